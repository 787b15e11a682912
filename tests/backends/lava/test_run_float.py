"""Lava floating_pt through `run_lava`: the NIR paper's Lava trace, closed forms, and the simulator's float mode.

The simulator runs in float64 here: Lava's float models compute in float64, and identical spikes
need identical arithmetic up to summation order (float32 would flip spikes that sit within
float32 rounding of a threshold).
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

from lava_nets import chain, io, lower_file, lower_nodes, requires_lava
from spikestack.backends.lava import run_lava
from spikestack.simulators import simulate

pytestmark = [pytest.mark.lava, requires_lava]


@pytest.fixture(scope="module")
def lif_paper(fixtures_dir):
    program = lower_file(fixtures_dir / "lif_norse.nir", "norse@1.0", dt=1e-4)
    exact = np.loadtxt(fixtures_dir / "lif_exact.csv", delimiter=",")
    return run_lava(program, exact[:, :1, None], "float", record=("1",), progress=False)


def test_lif_norse_reproduces_the_nir_papers_lava_trace(lif_paper, fixtures_dir):
    """The paper's Lava trace (paper/01_lif/lif_sim_lava.ipynb: RingBuffer -> Dense(dt/tau) -> LIF(du=1,
    dv=dt/tau, vth=0.1), monitored raw) is one step late: its Dense delivers at t + 1. run_lava reads
    past that step, so its trace at t is the paper's at t + 1, and the paper's first row is Lava's
    state before any input arrived."""
    paper = np.loadtxt(fixtures_dir / "lif_lava_cpu_float.csv", delimiter=",")
    spikes, v = lif_paper.output[:, 0, 0], lif_paper.recordings["1"]["v"][:, 0, 0]
    assert np.nonzero(spikes)[0].tolist() == [460, 510, 710, 760]
    np.testing.assert_array_equal(spikes[:-1], paper[1:, 2])
    np.testing.assert_allclose(v[:-1], paper[1:, 1], atol=1e-5, rtol=0)
    assert paper[0, 1] == 0 and paper[0, 2] == 0
    norse = np.loadtxt(fixtures_dir / "lif_norse.csv", delimiter=",")  # the same run, Norse's timing
    np.testing.assert_allclose(v, norse[:, 1], atol=1e-5, rtol=0)


def test_lif_norse_counts_the_recorded_events(lif_paper, fixtures_dir):
    inputs = int(np.loadtxt(fixtures_dir / "lif_exact.csv", delimiter=",")[:, 0].sum())
    counts = lif_paper.counts
    assert counts.total("spikes_out", "1") == 4
    assert counts.total("synaptic_events", "0") == inputs  # one synapse per input spike
    assert counts.total("neuron_updates", "1") == 1000


def test_cnn_sinabs_spikes_equal_the_simulator(fixtures_dir):
    program = lower_file(fixtures_dir / "cnn_sinabs.nir", "sinabs")
    x = (np.random.default_rng(4).random((100, 1, 2, 34, 34)) < 0.1).astype(np.float64)
    lava = run_lava(program, x, "float", progress=False, count=False)
    sim = simulate(program, x, "float", count=False, dtype=np.float64)
    assert lava.output.sum() > 10  # the comparison means something: the output layer spikes
    np.testing.assert_array_equal(lava.output, sim.output)


def test_braille_spikes_and_counts_equal_the_simulator(fixtures_dir):
    program = lower_file(fixtures_dir / "braille_noDelay_bias_zero.nir", "snntorch", reset="zero")
    x = (np.random.default_rng(5).random((120, 2, 12)) < 0.1).astype(np.float64)
    lava = run_lava(program, x, "float", record=("lif1.lif",), progress=False)
    sim = simulate(program, x, "float", record=("lif1.lif",), dtype=np.float64)
    assert lava.recordings["lif1.lif"]["s"].sum() > 20  # 47: the recurrent layer is active
    np.testing.assert_array_equal(lava.output, sim.output)
    np.testing.assert_array_equal(lava.recordings["lif1.lif"]["s"], sim.recordings["lif1.lif"]["s"])
    np.testing.assert_allclose(lava.recordings["lif1.lif"]["v"], sim.recordings["lif1.lif"]["v"], atol=1e-9)
    for node, metrics in sim.counts.per_node.items():
        for metric, values in metrics.items():
            np.testing.assert_array_equal(lava.counts.per_node[node][metric], values, err_msg=f"{node} {metric}")


def test_custom_neurons_follow_their_closed_forms():
    """One Lava run, three branches of one synapse layer each, against hand-computed traces:
    IF with subtractive reset and initial potential theta/2 under constant input; LI's impulse
    response (a readout: its output is v); a spike delayed by a Delay before its Linear."""
    inp, _ = io([3])
    c = np.array([0.25, 0.375, 0.625])  # binary fractions: the running sums are exact
    nodes = {
        "input": inp,
        "w_if": nir.Linear(weight=np.diag(c)),
        "if": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)),
        "w_li": nir.Linear(weight=np.full((1, 3), [1.0, 0, 0])),
        "li": nir.LI(tau=np.full(1, 4.0), r=np.ones(1), v_leak=np.zeros(1)),
        "delay": nir.Delay(delay=np.array([0.0, 3.0, 5.0])),
        "w_delay": nir.Linear(weight=np.eye(3)),
        "spikes": nir.IF(r=np.ones(3), v_threshold=np.full(3, 0.5), v_reset=np.zeros(3)),
        "out_if": nir.Output(output_type={"output": np.array([3])}),
        "out_li": nir.Output(output_type={"output": np.array([1])}),
        "out_delay": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = (chain(["input", "w_if", "if", "out_if"]) + chain(["input", "w_li", "li", "out_li"])
             + chain(["input", "delay", "w_delay", "spikes", "out_delay"]))
    program = lower_nodes(nodes, edges, dt=1.0, reset="subtract", initial_potential=0.5)
    T = 40
    x = np.zeros((T, 1, 3))
    x[:, 0, :] = 1.0  # constant drive for the IF branch
    run = run_lava(program, x, "float", progress=False, count=False)
    v, expected = np.full(3, 0.5), np.zeros((T, 3))
    for t in range(T):  # textbook IF: integrate, spike above threshold, subtract it
        v = v + c
        expected[t] = v > 1.0
        v = v - expected[t]
    np.testing.assert_array_equal(run.outputs["out_if"][:, 0], expected)
    # LI: v <- (1 - 1/4) v + x / 4 with x = 1 every step: v[t] = 1 - 0.75^(t + 1)
    np.testing.assert_allclose(run.outputs["out_li"][:, 0, 0], 1 - 0.75 ** np.arange(1, T + 1), atol=1e-12)
    # Delay: every input spike reaches its IF d steps later; threshold 0.5 makes each one a spike
    delays = [0, 3, 5]
    for i, d in enumerate(delays):
        assert np.nonzero(run.outputs["out_delay"][:, 0, i])[0].tolist() == list(range(d, T))
