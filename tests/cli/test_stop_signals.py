"""SIGTERM and SIGHUP end any command as Ctrl-C does: its cleanup runs, one line, exit 128 + signal.

(Lava runs, whose cleanup also stops a process group, are tested in tests/backends/lava/test_signals.py.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

import nir
import numpy as np

from conftest import default_stop_signals, small_mlp


# The compiled engine (no torch: ~150 MB once numba is loaded) runs the small MLP ~50x faster than the
# reference engine (torch: over 300 MB): it gets a graph and an input big enough to take seconds.
ENGINES = {"reference": (dict(), (20000, 64, 4), np.float32, 300_000),
           "compiled": (dict(n_in=64, n_hidden=2048), (6000, 64, 64), bool, 140_000)}


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_ends_a_simulation_with_one_line_and_leaves_no_file(tmp_path, sig, engine):
    graph, x, out = tmp_path / "g.nir", tmp_path / "x.npy", tmp_path / "out.npz"
    sizes, shape, dtype, started_kb = ENGINES[engine]
    nir.write(graph, small_mlp(**sizes))
    # Long enough to still be simulating when the signal comes (seconds), short enough to load fast.
    np.save(x, (np.random.default_rng(0).random(shape) < 0.2).astype(dtype))
    child = subprocess.Popen([sys.executable, "-m", "spikestack.cli", "run", str(graph), "--input", str(x),
                              "--out", str(out), "--dt", "1e-3", "--engine", engine],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_stop_signals)
    time.sleep(0.5)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:  # wait until the command itself runs
        status = open(f"/proc/{child.pid}/status").read()
        rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
        if rss_kb > started_kb:  # the engine's libraries and spikestack imported: the run has begun
            break
        time.sleep(0.2)
    time.sleep(1.0)
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    if child.returncode == 0:
        pytest.skip("the run finished before the signal came (machine faster than assumed)")
    assert child.returncode == 128 + sig, err
    assert err.strip().splitlines() == [f"spikestack run: terminated ({signal.Signals(sig).name})"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.nir", "x.npy"]  # no output, no temporary file


def test_a_signal_inside_the_kernel_compiler_is_sent_again_not_raised_there(monkeypatch):
    """llvmlite calls back into Python through ctypes while numba compiles a kernel: an exception raised
    there is swallowed and leaves numba's library half-built ("no compiled object yet", seen once in
    a fresh clone's make test). The handler sends the signal again later; outside the compiler it raises."""
    import types

    from spikestack import signals
    from spikestack.errors import Terminated

    sent = []
    monkeypatch.setattr(signals.signal, "pthread_kill", lambda ident, signum: sent.append(signum))
    monkeypatch.setattr(signals, "REDELIVER_S", 0.0)

    def frame(filename, back=None):
        return types.SimpleNamespace(f_code=types.SimpleNamespace(co_filename=filename), f_back=back)

    stop = signals.StopSignals()
    compiling = frame("/x/site-packages/llvmlite/binding/executionengine.py",
                      frame("/x/site-packages/numba/core/compiler.py", frame("/x/spikestack/simulators/run.py")))
    stop._handle(signal.SIGTERM, compiling)  # does not raise
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent == [signal.SIGTERM] and not stop.raised
    with pytest.raises(Terminated):
        stop._handle(signal.SIGTERM, frame("/x/spikestack/simulators/run.py"))
