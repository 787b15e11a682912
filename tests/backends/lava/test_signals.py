"""SIGTERM, SIGHUP and SIGKILL of a `spikestack run --backend lava` or `deploy`: within 2 s no
process of the run is left and its temporary directories are gone.

Each test starts the CLI as a user would, with TMPDIR pointed at a directory of its own (so "nothing
left" is exact, whatever else runs), waits until Lava's processes run (the worker's session holds
more than the worker), signals the CLI process and watches the worker's session (the worker leads
one: start_new_session) and TMPDIR. Zombies do not count: they are dead, waiting for init to reap them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nir
import numpy as np
import pytest

from conftest import default_stop_signals
from lava_nets import io, lif, requires_lava
from spikestack.backends.lava.child import CHILD_MODULE
from spikestack.signals import StopSignals
from spikestack.errors import Terminated

RUN_PREFIX = "spikestack-lava-"  # then the owner's pid (child.RUN_PREFIX)

STARTUP_S = 180.0  # Lava's start on a loaded 2-core machine
DEADLINE_S = 2.0  # from the signal to: nothing running, nothing left


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A 3-neuron graph and an input that takes Lava far longer than any test waits (~4 ms a step)."""
    root = tmp_path_factory.mktemp("signals")
    inp, out = io([3])
    nodes = {"input": inp, "fc": nir.Linear(weight=np.eye(3, dtype=np.float32)), "lif": lif(3, 0.01, 0.5), "output": out}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "output")]
    nir.write(root / "g.nir", nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    np.save(root / "long.npy", np.zeros((50_000, 1, 3)))
    np.save(root / "short.npy", np.zeros((3, 1, 3)))
    return {"graph": root / "g.nir", "long": root / "long.npy", "short": root / "short.npy"}


def _stat(pid: str) -> list[str]:
    """/proc/PID/stat after the command name: state, ppid, pgrp, session, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _session(sid: int) -> set[int]:
    """Pids of the processes of session `sid` that still run (not zombies)."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = _stat(pid)
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.add(int(pid))
    return found


def _worker(tmpdir: Path) -> int | None:
    """The pid of the Lava worker whose job lies in tmpdir, if it runs."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if CHILD_MODULE.encode() in cmdline and str(tmpdir).encode() in cmdline:
            return int(pid)
    return None


def _start(tmp_path: Path, args: list[str]) -> tuple[subprocess.Popen, Path, int]:
    """The CLI with TMPDIR of its own, once Lava's processes run: (CLI process, TMPDIR, worker pid)."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    with open(tmp_path / "stderr", "wb") as stderr:
        cli = subprocess.Popen([sys.executable, "-m", "spikestack.cli", *args], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=stderr, env=dict(os.environ, TMPDIR=str(tmpdir)),
                               preexec_fn=default_stop_signals)
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        assert cli.poll() is None, (tmp_path / "stderr").read_text()
        worker = _worker(tmpdir)
        if worker is not None and len(_session(worker)) >= 3:  # the worker, the resource tracker, Lava's
            return cli, tmpdir, worker
        time.sleep(0.1)
    cli.kill()
    pytest.fail(f"Lava did not start within {STARTUP_S:g} s")


def _signal_and_watch(cli: subprocess.Popen, tmpdir: Path, worker: int, sig: int) -> tuple[float, set[int], list[str]]:
    """Send sig to the CLI; wait up to DEADLINE_S for the CLI to exit, the worker's session to end and
    TMPDIR to empty. Returns (seconds taken, pids still running, what TMPDIR still holds)."""
    start = time.monotonic()
    cli.send_signal(sig)
    while True:
        elapsed = time.monotonic() - start
        running = _session(worker) | ({cli.pid} if cli.poll() is None else set())
        left = sorted(os.listdir(tmpdir))
        if (not running and not left) or elapsed > DEADLINE_S:
            break
        time.sleep(0.05)
    _end(cli, worker)
    return elapsed, running, left


def _end(cli: subprocess.Popen, worker: int) -> None:
    """Leave nothing running whatever happened: SIGTERM first, which the resource tracker ignores,
    so that it unlinks Lava's shared memory once the others are gone."""
    if cli.poll() is None:
        cli.kill()
    cli.wait()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _session(worker):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:  # it ended meanwhile
                pass
        deadline = time.monotonic() + 5
        while _session(worker) and time.monotonic() < deadline:
            time.sleep(0.1)


# SIGHUP takes SIGTERM's path: once, with run, is enough.
@requires_lava
@pytest.mark.parametrize(("command", "sig"), [("run", signal.SIGTERM), ("run", signal.SIGHUP), ("run", signal.SIGKILL),
                                              ("deploy", signal.SIGTERM), ("deploy", signal.SIGKILL)],
                         ids=["run-TERM", "run-HUP", "run-KILL", "deploy-TERM", "deploy-KILL"])
def test_a_signalled_lava_run_leaves_nothing(files, tmp_path, command, sig):
    out = ["--out", str(tmp_path / ("out.npz" if command == "run" else "report"))]
    cli, tmpdir, worker = _start(tmp_path, [command, str(files["graph"]), "--dt", "1e-3", "--backend", "lava",
                                            "--input", str(files["long"]), *out])
    elapsed, running, left = _signal_and_watch(cli, tmpdir, worker, sig)
    assert not running and not left, f"{elapsed:.1f} s after {sig.name}: running {running}, in TMPDIR {left}"
    if sig == signal.SIGKILL:
        assert cli.returncode == -signal.SIGKILL
    else:  # one line, and the shell's convention for a death by signal
        assert cli.returncode == 128 + sig
        lines = (tmp_path / "stderr").read_text().strip().splitlines()
        assert lines[-1] == f"spikestack {command}: terminated ({sig.name})"
        assert "Traceback" not in "\n".join(lines)


@requires_lava
def test_the_next_run_removes_what_dead_runs_left(files, tmp_path, monkeypatch):
    """Whatever a dead run left (its worker killed too: no one could clean) goes at the next start:
    its directory and its worker's multiprocessing one. A live run's stays, and so does a dead run's
    for its first minute."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    old = time.time() - 3600
    stale, fresh, live = (tmpdir / f"{RUN_PREFIX}{dead.pid}-abc", tmpdir / f"{RUN_PREFIX}{dead.pid}-def",
                          tmpdir / f"{RUN_PREFIX}{os.getpid()}-ghi")
    for path in (stale, fresh, live, tmpdir / "pymp-stale", tmpdir / "pymp-other"):
        path.mkdir()
        (path / "job.npz").write_bytes(b"x" * 1000)
    (stale / "mp-tempdir").write_text(str(tmpdir / "pymp-stale"))
    for path in (stale, live):
        os.utime(path, (old, old))
    result = subprocess.run([sys.executable, "-m", "spikestack.cli", "run", str(files["graph"]), "--dt", "1e-3",
                             "--backend", "lava", "--input", str(files["short"]), "--out", str(tmp_path / "out.npz")],
                            capture_output=True, text=True, env=dict(os.environ, TMPDIR=str(tmpdir)), timeout=STARTUP_S)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmpdir.iterdir()) == sorted([fresh.name, live.name, "pymp-other"])


def test_a_signal_waits_for_a_deferred_block_and_a_second_one_is_ignored(ctrl_c_raises):
    """Starting the worker and stopping it are never cut in half, and a second signal cannot abandon
    the first one's cleanup. The handlers are called directly: a real SIGTERM would end pytest if
    they were not installed."""
    with pytest.raises(Terminated) as info:
        with StopSignals() as stop:
            handler = signal.getsignal(signal.SIGTERM)
            with stop.deferred():
                handler(signal.SIGTERM, None)
                handler(signal.SIGHUP, None)
                finished = True
    assert finished and info.value.signum == signal.SIGTERM
    with StopSignals():
        with pytest.raises(KeyboardInterrupt):
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # ignored: the first one's cleanup runs
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_only_default_handlers_in_the_main_thread_are_replaced():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with StopSignals():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert callable(signal.getsignal(signal.SIGTERM))
    finally:
        signal.signal(signal.SIGHUP, previous)
    installed = []
    thread = threading.Thread(target=lambda: installed.append(StopSignals().__enter__().previous))
    thread.start()
    thread.join()
    assert installed == [{}]  # signal.signal would fail there
