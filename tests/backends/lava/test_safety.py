"""A Lava run never hangs the caller or leaves processes behind; Lava's absence is one clear line.

Lava hangs when one of its processes raises and leaks its OS processes when a runtime is not
stopped (lava-nc issues #231, #716): run_lava runs it in a child process group that it ends on
errors, timeouts and Ctrl-C. `lava_processes` finds the child and every process Lava forked.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time

import nir
import numpy as np
import pytest

from lava_nets import chain, io, lava_processes, lif, lower_nodes, requires_lava
from spikestack.backends.lava import LavaRunError, run_lava
from spikestack.backends.lava.child import run_in_child
from spikestack.backends.lava.lower import lower_program
from spikestack.backends.lava.run import _samples
from spikestack.errors import BackendUnavailableError


def _program(**options):
    inp, out = io([3])
    nodes = {"input": inp, "fc": nir.Linear(weight=np.eye(3)), "lif": lif(3, 0.01, 0.5), "output": out}
    return lower_nodes(nodes, chain(list(nodes)), dt=1e-3, **options)


def test_python_311_gets_one_clear_line(monkeypatch):
    monkeypatch.setattr(sys, "version_info", (3, 11, 4, "final", 0))
    with pytest.raises(BackendUnavailableError) as info:
        run_lava(_program(), np.zeros((5, 1, 3)))
    assert str(info.value) == "Lava backend unavailable: lava-nc needs Python 3.10 (this is Python 3.11.4)"


def test_missing_lava_gets_one_clear_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(BackendUnavailableError, match="^Lava backend unavailable: lava-nc is not installed"):
        run_lava(_program(), np.zeros((5, 1, 3)))


def test_importing_the_backend_never_needs_lava():
    code = ("import sys; sys.modules['lava'] = None\n"  # every `import lava...` now fails
            "import spikestack.backends.lava as backend\n"
            "from spikestack.backends.lava import shim\n"
            "print(shim.HAS_LAVA, backend.lava_unavailable_reason())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False Lava backend unavailable: lava-nc is not installed (pip install lava-nc==0.10.0)"


@requires_lava
def test_an_error_inside_a_lava_run_is_one_line_and_leaves_nothing():
    """A ProgramNeuron whose coefficients do not fit its shape raises inside Lava's run: the cause
    comes back as one line, and the runtime, which may hang in stop() after a failure, is ended."""
    plan = lower_program(_program(reset="subtract"), "float", 20)
    params = plan.nodes["lif"].params
    assert plan.nodes["lif"].kind == "neuron"
    params["coeffs"] = dataclasses.replace(params["coeffs"], alpha_v=np.ones(7))
    before = lava_processes()
    with pytest.raises(LavaRunError, match=r"^Lava run failed: ValueError: operands could not be broadcast") as info:
        run_in_child(plan, _samples(plan, np.ones((20, 1, 3))), 60.0, lambda b: None)
    assert "\n" not in str(info.value)
    assert not lava_processes() - before


@requires_lava
@pytest.mark.parametrize("stop", ["timeout", "ctrl-c"])
def test_a_stopped_run_ends_every_lava_process(stop, ctrl_c_raises):
    """A run far longer than the test (about 4 ms a step) is stopped once Lava's processes run."""
    before = lava_processes()
    running = []

    def interrupt():  # once Lava's processes run (a fixed delay is too short on a loaded machine)
        deadline = time.monotonic() + 120
        while len(lava_processes() - before) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        running.extend(lava_processes() - before)
        os.kill(os.getpid(), signal.SIGINT)

    x = np.zeros((100_000, 1, 3))
    if stop == "timeout":
        with pytest.raises(LavaRunError, match="no progress for 6 s"):
            run_lava(_program(), x, progress=False, count=False, timeout_s=6)
    else:
        timer = threading.Thread(target=interrupt)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            run_lava(_program(), x, progress=False, count=False)
        timer.join()
        assert len(running) > 1  # the child and the processes Lava forked were running
    assert not lava_processes() - before
