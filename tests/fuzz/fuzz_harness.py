"""The fuzzer's property, shared by tests/fuzz and bench/fuzz.py.

Whatever the file, a command run through `spikestack.cli.main` must: exit 0, or exit 2 with exactly
one non-empty line on stderr (exit 1 is the CLI's "internal error"; SPIKESTACK_DEBUG=1 makes it
raise instead, so a failing example shows its traceback); leave every input byte for byte as it
was; finish within TIMEOUT_S; and stay within its memory: with --max-memory 256M, no call may reserve
more than MEMORY_HEADROOM of address space beyond what the process held before (an rlimit, lowered
for the call only, so numpy fails with a MemoryError instead of swapping the machine; the CLI's
"out of memory" line for it means a size check is missing, and fails the property).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import functools
import hashlib
import io
import os
import resource
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence
from unittest import mock

import nir
import numpy as np

import spikestack.ir.quantise  # noqa: F401  (heavy imports first: they map more than the headroom)
import spikestack.pipeline  # noqa: F401
import spikestack.simulators  # noqa: F401
from conftest import GRAPHS, small_mlp
from spikestack import cli

TIMEOUT_S = 20  # a legitimate example takes well under a second
MEMORY_HEADROOM = 1 << 30  # no example of these small graphs needs 1 GiB
OUT_OF_MEMORY = "out of memory while running"  # the CLI's words for a MemoryError no size check foresaw
STEPS = 5  # a short input: `run` is there to reach lowering and the simulator, not to simulate long

# Each base file of the byte mutations, with what `run` needs: its input shape and lowering options.
BASES = {
    "lif_norse": ((1,), ["--preset", "norse@1.0"]),
    "cnn_sinabs": ((2, 34, 34), ["--preset", "sinabs"]),
    "braille": ((12,), ["--preset", "snntorch"]),
    "small_mlp": ((4,), ["--dt", "1e-3"]),
}
# `run` options for generated graphs: the time step given, taken from metadata (or missing), other modes.
RUN_OPTIONS = [["--dt", "1e-3"], ["--dt", "1e-3"], ["--dt", "1e-3", "--integration", "exact"], [],
               ["--preset", "sinabs"], ["--dt", "1e-3", "--mode", "loihi"]]


class Hang(BaseException):
    """An example ran past TIMEOUT_S (a BaseException, so that no `except Exception` swallows it)."""


class PropertyFailure(AssertionError):
    """The command broke the contract: wrong exit code, not one line, or an input changed."""


@dataclass(frozen=True)
class Outcome:
    code: int
    stderr: str


# `main` builds every command's parser on each call (~60 ms, more than an `info` example takes);
# parsing leaves a parser unchanged, so the examples share one, swapped in for the call only.
PARSER = cli.build_parser()


def _option_exists(command: str, option: str) -> bool:
    sub = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction))
    return option in sub.choices[command]._option_string_actions


# The product's own memory budget: a file declaring more must be refused in one line, long before
# the rlimit below would turn the allocation into a MemoryError.
MEMORY_ARGS = ["--max-memory", "256M"] if _option_exists("info", "--max-memory") else []


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextlib.contextmanager
def address_space_headroom(nbytes: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + nbytes
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# Where faulthandler writes the stacks before it ends a process stuck in C code: pytest captures
# stderr at the file-descriptor level, so a dump there would vanish with the process.
HANG_LOG = Path(tempfile.gettempdir()) / "spikestack-fuzz-hang.txt"


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """SIGALRM raises `Hang` in Python code; if C code never returns to Python, faulthandler writes
    every thread's stack to HANG_LOG and ends the process (a dead test run beats a hung one)."""
    def on_alarm(signum, frame):
        raise Hang(f"no exit after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    with open(HANG_LOG, "w") as log:
        faulthandler.dump_traceback_later(seconds * 3, exit=True, file=log)
        try:
            yield
        finally:
            signal.alarm(0)
            faulthandler.cancel_dump_traceback_later()
            signal.signal(signal.SIGALRM, previous)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_cli(argv: Sequence[str], inputs: Sequence[Path]) -> Outcome:
    """Run one command in-process and check the contract; exceptions from `main` propagate."""
    before = {p: sha256(p) for p in inputs}
    err, out = io.StringIO(), io.StringIO()
    with deadline(TIMEOUT_S), address_space_headroom(MEMORY_HEADROOM), \
            mock.patch.object(cli, "build_parser", lambda: PARSER), \
            mock.patch.dict(os.environ, {"SPIKESTACK_DEBUG": "1"}), \
            contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = cli.main([*argv, *MEMORY_ARGS])
        except SystemExit as exc:  # argparse's exits
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    outcome = Outcome(code, err.getvalue())
    check_outcome(argv, outcome)
    changed = [str(p) for p in inputs if sha256(p) != before[p]]
    if changed:
        raise PropertyFailure(f"{' '.join(argv)}: changed its input(s) {changed}")
    return outcome


def check_outcome(argv: Sequence[str], outcome: Outcome) -> None:
    lines = outcome.stderr.splitlines()
    if outcome.code == 2 and OUT_OF_MEMORY in outcome.stderr:
        raise PropertyFailure(f"{' '.join(argv)}: needed more than {MEMORY_HEADROOM >> 20} MiB although the "
                              f"budget was {MEMORY_ARGS[1:] or 'the default'}: a size check is missing")
    if outcome.code == 2:
        if len(lines) != 1 or not lines[0].startswith(f"spikestack {argv[0]}: error: ") or not lines[0].split("error: ", 1)[1].strip():
            raise PropertyFailure(f"{' '.join(argv)}: exit 2 but stderr is not one error line: {outcome.stderr!r}")
    elif outcome.code != 0:
        raise PropertyFailure(f"{' '.join(argv)}: exit {outcome.code}, stderr {outcome.stderr!r}")
    elif "Traceback" in outcome.stderr:
        raise PropertyFailure(f"{' '.join(argv)}: exit 0 with a traceback on stderr: {outcome.stderr!r}")


def run_case(path: Path, run_with: list[str] | None, input_shape: tuple[int, ...], seed: int) -> list[Outcome]:
    """`info` on `path`; then `run` on a short random input too, where `run_with` (its options) is given."""
    outcomes = [run_cli(["info", str(path)], [path])]
    if run_with is not None:
        x = path.with_name("x.npy")
        rng = np.random.default_rng(seed)
        np.save(x, (rng.random((STEPS, 2, *input_shape)) < 0.3).astype(np.float32))
        out = path.with_name("out.npz")
        outcomes.append(run_cli(["run", str(path), "--input", str(x), "--out", str(out), *run_with], [path, x]))
    return outcomes


@functools.lru_cache(maxsize=1)
def base_files() -> dict[str, bytes]:
    """The bytes of the byte-mutation bases: the NIR paper's fixtures and `small_mlp`."""
    with tempfile.TemporaryDirectory() as tmp:
        mlp = Path(tmp) / "mlp.nir"
        nir.write(mlp, small_mlp())
        blobs = {"small_mlp": mlp.read_bytes()}
    blobs.update({name: path.read_bytes() for name, path in GRAPHS.items()})
    return blobs
