"""Input arrays: a `.npy` file read header first, and the finite-values check every run makes.

A `.npy` header declares the shape and dtype; numpy's `load` allocates what it declares before it
finds the file too short, so a 128-byte file claiming 10^10 elements is a 40 GB allocation. We read
the header, refuse what no stage can run (objects, strings, complex, structured, datetimes, an
empty or 0-d array) and check the declared bytes against the memory budget before reading the data.
NaN or infinity in an input would silently give all-zero spikes (comparisons with NaN are false),
so every run refuses them, naming the first bad index.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from spikestack.errors import DataError
from spikestack.memory import check_elements, element_count

INPUT_KINDS = frozenset("biuf")  # bool, signed, unsigned, float: what the simulator and Lava take
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) from a `.npy` header, without reading the data."""
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in _HEADER_READERS:
                raise DataError(f"{path}: .npy format version {version[0]}.{version[1]} is not supported (1.0, 2.0)")
            shape, _, dtype = _HEADER_READERS[version](f)
            return tuple(shape), dtype, f.tell()
    except (ValueError, OSError, SyntaxError, TypeError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({str(exc).splitlines()[0][:100]})") from None


def check_finite(x: np.ndarray | Mapping[str, np.ndarray], what: str = "input") -> None:
    """Refuse NaN or infinite values (a dict: each array by name), naming the first bad index."""
    if isinstance(x, Mapping):
        for name, arr in x.items():
            check_finite(arr, f"{what} '{name}'")
        return
    arr = np.asarray(x)
    if arr.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        index = np.unravel_index(int(bad.argmax()), arr.shape)
        raise DataError(f"{what}: value {arr[index]} at index {tuple(int(i) for i in index)}; "
                        "inputs must be finite (no NaN or infinity)")


def load_input(path: str | os.PathLike) -> np.ndarray:
    """A time-major `.npy` array (T, B, *input_shape) of bools, integers or floats; never unpickled."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such input file")
    shape, dtype, offset = _read_header(path)
    if dtype.kind not in INPUT_KINDS:
        raise DataError(f"{path}: dtype {dtype} is not an input (bool, integer or float arrays only)")
    if not shape or 0 in shape:
        raise DataError(f"{path}: an array of shape {shape} holds no input (need (T, B, *input_shape), none of them 0)")
    n_bytes = check_elements(f"{path}: input array of shape {shape}", element_count(shape), dtype)
    if path.stat().st_size < offset + n_bytes:
        raise DataError(f"{path}: truncated, the header declares {n_bytes:,} bytes of data but the file holds "
                        f"{path.stat().st_size - offset:,}")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({str(exc).splitlines()[0][:100]})") from None
    check_finite(x, str(path))
    return x
