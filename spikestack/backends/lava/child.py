"""Run a `LavaPlan` in a child process that can always be stopped, with all of Lava's processes.

Lava runs each process as an OS process and hangs when one raises (lava-nc issues #231, #716), so
the user's process never imports Lava's runtime. `run_in_child` starts `python -m
spikestack.backends.lava.worker JOB FD PARENT` in a new session (its own process group, which also
keeps a terminal's Ctrl-C away from it), reads one message per sample from a pipe, and whatever
happens (an error, Ctrl-C, SIGTERM or SIGHUP (signals.py), no message for `timeout_s`) ends the whole
group in `finally` and removes the run's temporary directory. A SIGKILL of this process cannot be
caught: the worker then notices that its parent is gone and does both itself (worker.py), and
whatever a run still left behind is removed by the next run (`remove_stale_runs`). A subprocess, not
multiprocessing: a spawned multiprocessing child sets the start method that Lava then sets again,
which fails ("context has already been set").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

import numpy as np

from spikestack.backends.lava.plan import LavaPlan, read_traces, write_job
from spikestack.signals import StopSignals
from spikestack.errors import SpikestackError

CHILD_MODULE = "spikestack.backends.lava.worker"  # runs the job; the package never imports it
POLL_S = 0.1
STOP_GRACE_S = 2.0
RUN_PREFIX = "spikestack-lava-"  # then the owner's pid: spikestack-lava-<pid>-<random>
# In a run's directory, the path of its worker's multiprocessing temporary directory (pymp-*, where
# Lava's shared-memory manager has its socket), which a killed worker cannot remove (worker.py).
MP_TEMP_FILE = "mp-tempdir"
STALE_AFTER_S = 60.0  # a run's directory is stale once its owner is dead and it is this old


class LavaRunError(SpikestackError):
    """Lava failed, made no progress, or was interrupted while running a network."""


def run_in_child(plan: LavaPlan, samples: np.ndarray, timeout_s: float, on_sample: Callable[[int], None]) -> list[dict]:
    """Run every sample (B, *Lava input shape, n_steps) through `plan` in a child process; return the
    traces of each, {(Lava process, trace key): (n_steps, *shape)}. Calls on_sample(b) as each arrives."""
    temp_root = Path(tempfile.gettempdir())
    remove_stale_runs(temp_root)
    with StopSignals() as stop:
        with stop.deferred():  # a signal between mkdtemp and `try` would leave the directory behind
            tmp = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-", dir=temp_root))
        try:
            return _run(plan, samples, timeout_s, on_sample, tmp, stop)
        finally:
            with stop.deferred():
                remove_run_dir(tmp)


def _run(plan: LavaPlan, samples: np.ndarray, timeout_s: float, on_sample: Callable[[int], None], tmp: Path,
         stop: StopSignals) -> list[dict]:
    results: list[dict] = []
    job, log = tmp / "job.npz", tmp / "child.log"
    write_job(job, plan, samples)  # arrays and JSON: the child unpickles nothing from a file
    with stop.deferred():  # a child started but not yet known here would run on
        child, conn = _start(job, log, tmp.parent)
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
        with stop.deferred():
            conn.close()
            _stop_group(child)
    return results


def _start(job: Path, log: Path, temp_root: Path) -> tuple[subprocess.Popen, Connection]:
    """The worker, in a new session, and the read end of its pipe. TMPDIR: its temporary files go
    where ours do, where `remove_run_dir` looks for them."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(temp_root),
               PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[3]),
                                                        os.environ.get("PYTHONPATH")])))
    read_fd, write_fd = os.pipe()
    try:
        with open(log, "wb") as log_file:
            child = subprocess.Popen(
                [sys.executable, "-m", CHILD_MODULE, str(job), str(write_fd), str(os.getpid())],
                pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, env=env)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # the child holds the only write end: end of file means it is gone
    return child, Connection(read_fd, writable=False)


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
    """End the child's process group (the child and every process Lava forked), if any is left.
    SIGTERM first: multiprocessing's resource tracker ignores it and, once the others are gone,
    unlinks the shared memory they left (a SIGKILL of the whole group would leave it in /dev/shm)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + STOP_GRACE_S
        while _group_running(child.pid) and time.monotonic() < deadline:
            child.poll()
            time.sleep(POLL_S)
        if not _group_running(child.pid):
            break
    child.wait()


def _group_running(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs. Zombies do not count: Lava's processes, orphaned
    once the worker ends, wait for init to reap them, which can take a second. Without /proc:
    whether the group exists at all."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        try:
            os.killpg(pgid, 0)  # signal 0 only asks
        except ProcessLookupError:
            return False
        return True
    for name in filter(str.isdigit, entries):
        try:  # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
            state, _, group = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):  # it ended while we looked
            continue
        if state != "Z" and int(group) == pgid:
            return True
    return False


def remove_run_dir(run_dir: Path) -> None:
    """Remove a run's temporary directory and its worker's multiprocessing one (`MP_TEMP_FILE`),
    once nothing of the run is left to write there."""
    try:
        mp_dir = Path((run_dir / MP_TEMP_FILE).read_text())
    except (OSError, ValueError):  # not written (the worker never got that far) or unreadable
        mp_dir = None
    if mp_dir is not None and mp_dir.parent == run_dir.parent and mp_dir.name.startswith("pymp-"):
        shutil.rmtree(mp_dir, ignore_errors=True)
    for _ in range(3):  # a file written while it was being removed leaves it non-empty: again
        shutil.rmtree(run_dir, ignore_errors=True)
        if not run_dir.exists():
            break


def remove_stale_runs(temp_root: Path) -> None:
    """Remove the directories of earlier runs (`RUN_PREFIX`) that are ours (this user's), whose owner
    is dead and that are older than STALE_AFTER_S: what a run killed outright left, when its worker
    could not remove it. A live run's is never touched; a reused pid only keeps a stale one longer."""
    now = time.time()
    for path in temp_root.glob(f"{RUN_PREFIX}*"):
        owner = re.match(rf"{re.escape(RUN_PREFIX)}(\d+)-", path.name)
        try:
            info = path.lstat()
        except OSError:  # removed meanwhile
            continue
        if (owner and stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
                and now - info.st_mtime > STALE_AFTER_S and not _alive(int(owner[1]))):
            remove_run_dir(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True
