"""The memory budget: how many bytes a file may make one command allocate.

A file small on disk can declare arrays of any size: an HDF5 dataset's shape, a `.npy` or IDX
header, a Delay of 10^9 steps, a one-element parameter broadcast to 3 * 10^8 neurons, a stored
architecture. Every reader computes the bytes such a declaration implies (with Python integers,
which do not overflow) and checks them here before allocating, so the refusal is one line naming
the field and the size, instead of a MemoryError traceback or, on a machine that overcommits, the
kernel's OOM killer much later.

The budget is `--max-memory` (`set_memory_budget`), else the environment variable
SPIKESTACK_MAX_MEMORY (set too by `set_memory_budget`, so Lava and Dask child processes inherit
it), else 80% of the memory the machine has available at the time of the check.
"""

from __future__ import annotations

import math
import os
import re
from contextlib import contextmanager
from typing import Iterable, Iterator

import numpy as np

from spikestack.errors import OptionsError, ResourceLimitError

ENV_VAR = "SPIKESTACK_MAX_MEMORY"
AVAILABLE_FRACTION = 0.8  # leave room for the interpreter, torch and what the OS caches
FALLBACK_BYTES = 4 * 2**30  # neither /proc/meminfo nor sysconf: a machine we know nothing about
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)

_explicit: int | None = None  # set_memory_budget's value, when one is set


def parse_size(text: str | int) -> int:
    """Bytes from '512M', '2G', '1.5GiB', '64kB' or '1000000' (k/M/G/T are powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _SIZE.fullmatch(str(text))
        if match is None:
            raise OptionsError(f"--max-memory: '{text}' is not a size (examples: 512M, 2G, 1.5GiB, 1000000)")
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not math.isfinite(value) or value < 1:
        raise OptionsError(f"--max-memory: '{text}' must be a positive size of at least one byte")
    return int(value)


def available_memory() -> int:
    """Bytes the machine can give now: MemAvailable (Linux), else free pages, else FALLBACK_BYTES."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return FALLBACK_BYTES


def memory_budget() -> int:
    """The budget in bytes: the explicit setting, else $SPIKESTACK_MAX_MEMORY, else 80% of available."""
    if _explicit is not None:
        return _explicit
    if os.environ.get(ENV_VAR):
        try:
            return parse_size(os.environ[ENV_VAR])
        except OptionsError:
            raise OptionsError(f"{ENV_VAR}='{os.environ[ENV_VAR]}' is not a size (examples: 512M, 2G)") from None
    return max(1, int(available_memory() * AVAILABLE_FRACTION))


def set_memory_budget(value: int | str | None) -> None:
    """Set the budget for this process and the processes it starts; None: back to the default."""
    global _explicit
    if value is None:
        _explicit = None
        os.environ.pop(ENV_VAR, None)
        return
    _explicit = parse_size(value)
    os.environ[ENV_VAR] = str(_explicit)


@contextmanager
def memory_limit(value: int | str | None) -> Iterator[None]:
    """The budget `value` inside the block (None: leave it as it is), the previous one after it."""
    global _explicit
    saved = (_explicit, os.environ.get(ENV_VAR))
    if value is not None:
        set_memory_budget(value)
    try:
        yield
    finally:
        _explicit = saved[0]
        if saved[1] is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = saved[1]


def format_bytes(n: int) -> str:
    """'283 GiB', '1.5 MiB', '512 bytes': three significant digits at most."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def check_allocation(what: str, n_bytes: int) -> None:
    """Raise ResourceLimitError if allocating n_bytes for `what` would exceed the budget."""
    budget = memory_budget()
    if n_bytes > budget:
        raise ResourceLimitError(f"{what} = {format_bytes(n_bytes)} exceeds the memory budget of "
                                 f"{format_bytes(budget)} (--max-memory)")


def element_count(shape: Iterable[int]) -> int:
    """Elements of an array of `shape`, as a Python int (no int64 overflow for absurd shapes)."""
    return math.prod(int(s) for s in shape)


def check_elements(what: str, count: int | Iterable[int], dtype, copies: int = 1) -> int:
    """Check `copies` arrays of `count` elements (or of that shape) of `dtype`; return their bytes.

    The message reads "<what>: 38,000,000,000 elements x 4 bytes = 142 GiB exceeds ...".
    """
    n = int(count) if isinstance(count, (int, np.integer)) else element_count(count)
    itemsize = np.dtype(dtype).itemsize
    n_bytes = n * itemsize * copies
    times = f"{copies} arrays of " if copies > 1 else ""
    check_allocation(f"{what}: {times}{n:,} elements x {itemsize} bytes", n_bytes)
    return n_bytes
