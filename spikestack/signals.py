"""Stop signals as exceptions, so that cleanup always runs: every CLI command runs inside one
`StopSignals` block (cli.main), and a Lava run opens its own (backends/lava/child.py).

SIGTERM (kill, systemd, a batch scheduler) and SIGHUP (a closed terminal) end a Python process at
once by default, skipping every `finally`: the one that stops Lava's process group and removes its
temporary directory (child.py), and the one that removes an atomic write's temporary file
(outputs.py); Ctrl-C's KeyboardInterrupt does not. While a `StopSignals` block is active they
raise `Terminated` (a KeyboardInterrupt) like Ctrl-C does. Inside `deferred()` (starting the child,
stopping it) a signal waits until the block ends, so neither is cut in half, and once one signal
has been raised the next ones are ignored: a second Ctrl-C cannot abandon the cleanup of the first.

A signal that lands while numba compiles a kernel (llvmlite calls back into Python from C, through
ctypes) is not raised there: ctypes would swallow the exception and leave numba's half-built library
behind ("no compiled object yet"). The handler sends the signal again a moment later, until it lands
outside the compiler.

Only default handlers are replaced (a SIGHUP that nohup ignores stays ignored; a handler of the
caller's stays in charge), and only in the main thread: Python runs handlers there alone, and
signal.signal fails in any other (Dask runs tasks in threads; there nothing changes). Blocks nest:
an inner block entered while an outer one is active is the outer one (`with StopSignals() as stop`
gives the outer), so `stop.deferred()` defers the signal that the outer handlers receive.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from spikestack.errors import Terminated

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REDELIVER_S = 0.05  # a signal that landed inside the kernel compiler is sent again after this long
_COMPILER = (f"{os.sep}numba{os.sep}", f"{os.sep}llvmlite{os.sep}")
_active: list[StopSignals] = []  # the outermost block whose handlers are installed (main thread only)


def stop_exception(signum: int) -> KeyboardInterrupt:
    """What signal `signum` raises: Ctrl-C's own KeyboardInterrupt, or `Terminated(signum)`."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def in_compiler(frame) -> bool:
    """Whether the interrupted Python stack runs numba's or llvmlite's code (a kernel being compiled)."""
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in _COMPILER):
            return True
        frame = frame.f_back
    return False


class StopSignals:
    """A context manager: SIGINT, SIGTERM and SIGHUP raise (`stop_exception`) while it is active."""

    def __init__(self) -> None:
        self.previous: dict[int, object] = {}
        self.deferring = 0
        self.pending: int | None = None
        self.raised = False

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        if _active:
            return _active[0]  # nested: the outer block's handlers are the ones called
        for sig in STOP_SIGNALS:
            default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
            if signal.getsignal(sig) == default:
                self.previous[sig] = signal.signal(sig, self._handle)
        _active.append(self)
        return self

    def __exit__(self, *exc_info) -> None:
        if not _active or _active[0] is not self:
            return  # an inner block (or another thread's): the outer one restores and raises
        _active.clear()
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()
        if self.pending is not None and not self.raised:  # it came during a deferred block that raised
            self.raised = True
            raise stop_exception(self.pending)

    def _handle(self, signum: int, frame) -> None:
        if self.raised:
            return  # the first one's cleanup is under way
        if in_compiler(frame):  # raising here would be swallowed by a ctypes callback: try again soon
            redeliver = threading.Timer(REDELIVER_S, signal.pthread_kill, (threading.main_thread().ident, signum))
            redeliver.daemon = True
            redeliver.start()
            return
        if self.deferring:
            self.pending = self.pending or signum
            return
        self.raised = True
        raise stop_exception(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A block that a stop signal does not interrupt: it raises when the block ends."""
        self.deferring += 1
        try:
            yield
        finally:
            self.deferring -= 1
        if self.pending is not None and not self.deferring and not self.raised:
            self.raised = True
            raise stop_exception(self.pending)
