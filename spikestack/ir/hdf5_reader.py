"""The HDF5 reader process: a fresh interpreter that reads each `.nir` tree before this process does.

One byte changed in an HDF5 global heap makes HDF5 2.0 loop forever inside `dataset[()]`, holding
the GIL (hdf5.py), and other damage can crash HDF5 in C. So `read_in_child` first has another
process read the whole tree: the reader, started on first use as `python -c` (a new interpreter,
not a fork: it imports h5py and hdf5.py's `read_tree` only, and shares no lock or thread with us).
For each file it receives one line (the memory budget, the time limit, the absolute path in hex),
reads the tree with the same checks, and answers one line, "ok" or "failed"; nothing else crosses
(on success the caller reads the file itself, so nothing is unpickled). If no answer comes within
the time limit the reader is killed and reaped, and the file refused in one line; if it dies, the
file is refused the same way. Either way the next read starts a new reader.

The reader ignores SIGINT (Ctrl-C is ours to handle: a stop signal raised while we wait kills it),
exits when its stdin ends (this process has exited, however it ended), and a read of its own runs
under an interval timer whose default action ends it (SIGALRM: even a GIL-holding hang), so a
reader left behind by a SIGKILL of ours does not spin for long. A forked copy of this process
(os.fork, multiprocessing) closes its copies of the pipes and starts its own reader.
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from spikestack.errors import GraphFileError
from spikestack.memory import memory_budget, set_memory_budget

READ_TIMEOUT_S = 10.0  # a valid NIR file of hundreds of MB reads in about a second
STARTUP_TIMEOUT_S = 120.0  # a new interpreter importing h5py: 0.2 s, much more on a loaded machine

_IR = Path(__file__).resolve().parent
# The reader imports spikestack.ir.hdf5 without running spikestack/ir/__init__.py (the whole IR
# layer, and through it torch): `spikestack.ir` is made a bare package first. The folder holding
# this copy of spikestack replaces the current directory at the head of sys.path.
_BOOT = (f"import sys, types; sys.path[0] = {str(_IR.parents[1])!r}; "
         f"ir = types.ModuleType('spikestack.ir'); ir.__path__ = [{str(_IR)!r}]; sys.modules['spikestack.ir'] = ir; "
         "from spikestack.ir.hdf5_reader import serve; serve()")


def own_limit_s(timeout_s: float) -> float:
    """The reader's own limit on one read: after the caller's kill would have come."""
    return 2 * timeout_s + 1


def serve() -> None:
    """The reader's loop: one request line in, one answer line out, until stdin ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import h5py

    from spikestack.ir.hdf5 import read_tree

    answers = os.dup(1)  # the answers' own descriptor: whatever HDF5 might print goes nowhere
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.write(answers, b"ready\n")
    for line in sys.stdin.buffer:
        budget, timeout_s, path = line.split()
        set_memory_budget(int(budget))  # the caller's: a declared size it refuses is not allocated here
        signal.setitimer(signal.ITIMER_REAL, own_limit_s(float(timeout_s)))
        answer = b"ok\n"
        try:
            with h5py.File(bytes.fromhex(path.decode()), "r") as file:
                if "node" in file:
                    read_tree(file, "node")
        except Exception:  # noqa: BLE001  (the caller's own read raises the same error, in one line)
            answer = b"failed\n"
        signal.setitimer(signal.ITIMER_REAL, 0)
        os.write(answers, answer)


class ReaderProcess:
    """This process's end of the reader: starts it on first use, one request at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def read(self, path: str, timeout_s: float) -> None:
        with self.lock:
            try:
                self._read(path, timeout_s)
            except BaseException:  # a signal (Ctrl-C, SIGTERM, an alarm) or an error mid-request
                self.stop()  # the reader's state is unknown: the next read starts a new one
                raise

    def _read(self, path: str, timeout_s: float) -> None:
        request = f"{memory_budget()} {timeout_s!r} {os.fsencode(os.path.abspath(path)).hex()}\n".encode()
        if self.process is not None and (self.process.poll() is not None or self._gone()):
            self.stop()  # it died since the last request (killed from outside): a new one
        if self.process is None:
            self.start()
        answer = self._ask(request, timeout_s)
        status = self.stop() if answer == b"" else None
        if status == -signal.SIGKILL:  # killed from outside (an operator, the OOM killer), maybe still dying
            self.start()  # when we asked: not the file's doing (HDF5 crashes by SIGSEGV or SIGABRT, never
            answer, status = self._ask(request, timeout_s), None  # SIGKILL): ask a new reader once
        if answer in (b"ok", b"failed"):  # "failed": the caller's own read raises the error
            return
        status = self.stop() if status is None else status
        if answer is None or status == -signal.SIGALRM:  # SIGALRM: its own limit, should ours come late
            raise GraphFileError(f"{path}: the HDF5 library did not finish reading it in {timeout_s:g} s "
                                 "(a corrupt file: HDF5 loops on some damaged heaps)")
        how = f"signal {-status}" if status < 0 else f"exit status {status}"
        raise GraphFileError(f"{path}: the HDF5 library crashed reading it ({how}): a corrupt file")

    def _gone(self) -> bool:
        """Between requests an idle reader says nothing: its pipe at end of file means it has died
        (which waitpid may not show yet)."""
        fd = self.process.stdout.fileno()
        return bool(select.select([fd], [], [], 0)[0]) and os.read(fd, 64) == b""

    def _ask(self, request: bytes, timeout_s: float) -> bytes | None:
        try:
            self.process.stdin.write(request)
            self.process.stdin.flush()
        except BrokenPipeError:  # it is gone: the answer is "died"
            return b""
        return self._answer(timeout_s)

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
        if self._answer(STARTUP_TIMEOUT_S) != b"ready":
            status = self.stop()
            raise RuntimeError(f"the HDF5 reader process ({sys.executable}) did not start (status {status})")

    def _answer(self, timeout_s: float) -> bytes | None:
        """The reader's next line, without its newline; b"" if it died first, None after timeout_s."""
        fd, data = self.process.stdout.fileno(), b""
        deadline = time.monotonic() + timeout_s
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 64)
            if not chunk:
                return b""
            data += chunk
        return data[:-1]

    def stop(self) -> int | None:
        """Kill and reap the reader (if there is one); its exit status (-N: signal N)."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        status = process.wait()
        process.stdin.close()
        process.stdout.close()
        return status

    def close(self) -> None:
        """At exit: end of stdin lets the reader exit by itself; kill it if it is stuck."""
        process, self.process = self.process, None
        if process is not None:
            try:
                process.stdin.close()
                process.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self.process = process
                self.stop()

    def forget(self) -> None:
        """In a forked copy of this process: the reader and its lock are the parent's."""
        self.lock = threading.Lock()
        process, self.process = self.process, None
        if process is not None:
            process.stdin.detach().close()  # without flushing: a request half written is the parent's
            process.stdout.close()
            process.returncode = 0  # not our child: no waitpid, no "still running" warning for it


READER = ReaderProcess()
atexit.register(READER.close)
os.register_at_fork(after_in_child=READER.forget)


def read_in_child(path: str, timeout_s: float = READ_TIMEOUT_S) -> None:
    """Have the reader process read the tree of `path` first: one-line `GraphFileError` if HDF5
    hangs or crashes there. Errors of ours are left for the caller's own read to raise."""
    READER.read(path, timeout_s)
