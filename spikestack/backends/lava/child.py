"""Run a `LavaPlan` in a child process that can always be stopped, with all of Lava's processes.

Lava runs each process as an OS process and hangs when one raises (lava-nc issues #231, #716), so
the user's process never imports Lava's runtime. `run_in_child` starts `python -m
spikestack.backends.lava.worker JOB FD` in a new session (its own process group, which also keeps a
terminal's Ctrl-C away from it), reads one message per sample from a pipe, and whatever happens
(an error, Ctrl-C, no message for `timeout_s`) ends the whole group in `finally`. A subprocess, not
multiprocessing: a spawned multiprocessing child sets the start method that Lava then sets again,
which fails ("context has already been set").
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

import numpy as np

from spikestack.backends.lava.plan import LavaPlan, read_traces, write_job
from spikestack.errors import SpikestackError

CHILD_MODULE = "spikestack.backends.lava.worker"  # runs the job; the package never imports it
POLL_S = 0.1
STOP_GRACE_S = 2.0


class LavaRunError(SpikestackError):
    """Lava failed, made no progress, or was interrupted while running a network."""


def run_in_child(plan: LavaPlan, samples: np.ndarray, timeout_s: float, on_sample: Callable[[int], None]) -> list[dict]:
    """Run every sample (B, *Lava input shape, n_steps) through `plan` in a child process; return the
    traces of each, {(Lava process, trace key): (n_steps, *shape)}. Calls on_sample(b) as each arrives."""
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="spikestack-lava-") as tmp:
        job, log = Path(tmp) / "job.npz", Path(tmp) / "child.log"
        write_job(job, plan, samples)  # arrays and JSON: the child unpickles nothing from a file
        read_fd, write_fd = os.pipe()
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[3]),
                                                                         os.environ.get("PYTHONPATH")])))
        with open(log, "wb") as log_file:
            child = subprocess.Popen(
                [sys.executable, "-m", CHILD_MODULE, str(job), str(write_fd)],
                pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, env=env)
        os.close(write_fd)  # the child holds the only write end: end of file means it is gone
        conn = Connection(read_fd, writable=False)
        try:
            while len(results) < len(samples):
                message = _next_message(conn, child, timeout_s, log)
                if message[0] == "error":
                    raise LavaRunError(f"Lava run failed: {_process_error(log) or message[1]}")
                results.append(read_traces(Path(message[2])))
                on_sample(message[1])
            _next_message(conn, child, timeout_s, log)  # "done": the runtime has stopped
            try:  # let it exit by itself: Lava cleans up its shared memory on the way out
                child.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass  # every result is in; _stop_group ends it
        finally:
            conn.close()
            _stop_group(child)
    return results


def _next_message(conn: Connection, child: subprocess.Popen, timeout_s: float, log: Path) -> list:
    deadline = time.monotonic() + timeout_s
    while not conn.poll(POLL_S):
        if time.monotonic() > deadline:
            raise LavaRunError(f"Lava made no progress for {timeout_s:g} s (a failing Lava process hangs the "
                               "runtime); its processes were stopped")
    try:
        return json.loads(conn.recv_bytes().decode())  # JSON (worker.py): nothing unpickled either way
    except EOFError:
        child.wait()
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        raise LavaRunError(f"the Lava process exited with code {child.returncode} before finishing"
                           + (f": {tail[0]}" if tail else "")) from None


def _process_error(log: Path) -> str:
    """The last exception a Lava process printed (processes.py prints ours), or "". Lava itself only
    says "1 Exception(s) occurred. See output above for details." and logs the cause at INFO level."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    errors = [line.strip() for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b", line)]
    return errors[-1] if errors else ""


def _stop_group(child: subprocess.Popen) -> None:
    """End the child's process group (the child and every process Lava forked), if any is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + STOP_GRACE_S
        try:
            os.killpg(child.pid, sig)
            while time.monotonic() < deadline:  # signal 0 only asks whether the group still exists
                child.poll()
                os.killpg(child.pid, 0)
                time.sleep(POLL_S)
        except ProcessLookupError:
            break
    child.wait()
