"""Shared fixtures: the NIR paper's graphs from ../shared/fixtures, and a small graph writer."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest

try:  # Lava sets multiprocessing's start method when first imported and fails if any library set it
    # before (anything calling mp.get_start_method() does): import it first, once, for the tests that
    # build Lava processes in-process.
    import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
except ImportError:  # no lava-nc (Python >= 3.11): Lava tests skip themselves
    pass

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "nir-paper"
GRAPHS = {
    "lif_norse": FIXTURES / "lif_norse.nir",
    "cnn_sinabs": FIXTURES / "cnn_sinabs.nir",
    "braille": FIXTURES / "braille_noDelay_bias_zero.nir",
}


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"fixtures not found at {FIXTURES}")
    return FIXTURES


def small_mlp(n_in=4, n_hidden=3, n_out=2, seed=0) -> nir.NIRGraph:
    """Input -> Affine -> LIF -> Affine -> LIF -> Output with per-neuron parameters."""
    rng = np.random.default_rng(seed)

    def lif(n):
        return nir.LIF(tau=np.full(n, 0.01), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))

    nodes = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "fc1": nir.Affine(weight=rng.normal(size=(n_hidden, n_in)).astype(np.float32), bias=np.zeros(n_hidden, np.float32)),
        "lif1": lif(n_hidden),
        "fc2": nir.Affine(weight=rng.normal(size=(n_out, n_hidden)).astype(np.float32), bias=np.zeros(n_out, np.float32)),
        "lif2": lif(n_out),
        "output": nir.Output(output_type={"output": np.array([n_out])}),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.fixture()
def one_torch_thread():
    """Torch on one thread: repeatable sums, and faster than two for these small layers on 2 cores."""
    from spikestack.frontend.train import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits, the embedded default split (flattened to 64 features)."""
    from spikestack.frontend.data import load_digits

    return load_digits()


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raising KeyboardInterrupt, as in any interactive Python. A shell without job control
    starts background jobs (`make test &`, some CI runners) with SIGINT ignored, and Python then
    leaves it ignored: the tests that press Ctrl-C need Python's own handler back for their duration."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def default_stop_signals() -> None:
    """`preexec_fn` for a child CLI that a test stops with a signal: SIGINT, SIGTERM and SIGHUP at
    their defaults, whatever this test run inherited (nohup ignores SIGHUP; background jobs SIGINT),
    since the CLI leaves an ignored signal ignored, as a user who ran it so would want."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
