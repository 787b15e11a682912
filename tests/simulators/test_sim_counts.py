"""The simulator's Counts against recounts written here from the recorded spikes and values."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikestack.ir import build_graph, load_graph, lower_graph, resolve_options
from spikestack.simulators import simulate
from sim_fixtures import one_torch_thread  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def cnn_run(fixtures_dir):
    graph = load_graph(fixtures_dir / "cnn_sinabs.nir")
    # one spike per step, so layer '10' is binary and '11' counts ACs (test_multi_spike_counts: counts)
    program = lower_graph(graph, resolve_options(graph.metadata, preset="sinabs", threshold=">", spikes_per_step="one"))
    x = (np.random.default_rng(1).random((20, 3, 2, 34, 34)) < 0.2).astype(np.float32)
    x[3, 1, 0, 5, 5] = 3  # a pixel with three events in one step
    return x, simulate(program, x, record=["7", "9", "10", "12"]), graph.nodes


def test_dense_layers_recount(cnn_run):
    x, run, nodes = cnn_run
    c, rec = run.counts.per_node, run.recordings
    pooled = rec["7"]["out"].reshape(20, 3, -1)  # spike counts into Flatten -> Affine '9'
    np.testing.assert_array_equal(c["9"]["spikes_in"], pooled.sum(-1))
    np.testing.assert_array_equal(c["9"]["synaptic_events"], pooled.sum(-1) * 256)  # fan-out = out_features
    np.testing.assert_array_equal(c["9"]["dense_macs"], np.full((20, 3), 128 * 256))
    s10 = rec["10"]["s"]
    np.testing.assert_array_equal(c["11"]["synaptic_events"], s10.sum(-1) * 10)
    w11 = np.asarray(nodes["11"].weight)
    np.testing.assert_array_equal(c["11"]["effective_acs"], s10 @ (w11 != 0).sum(0))  # binary input: ACs
    assert (c["11"]["effective_macs"] == 0).all()
    binary9 = ((pooled == 0) | (pooled == 1)).all(-1)
    effective9 = (pooled != 0) @ (np.asarray(nodes["9"].weight) != 0).sum(0)
    np.testing.assert_array_equal(c["9"]["effective_acs"] + c["9"]["effective_macs"], effective9)
    np.testing.assert_array_equal(c["9"]["effective_macs"] > 0, ~binary9 & (effective9 > 0))
    for name, n in (("10", 256), ("12", 10)):
        np.testing.assert_array_equal(c[name]["neuron_updates"], np.full((20, 3), n))
        np.testing.assert_array_equal(c[name]["spikes_out"], rec[name]["s"].sum(-1))
    active = (rec["9"]["out"] != 0) | (rec["10"]["s"] != 0)
    np.testing.assert_array_equal(c["10"]["active_neuron_updates"], active.sum(-1))
    np.testing.assert_array_equal(c["input"]["spikes_out"], x.reshape(20, 3, -1).sum(-1))  # 3 events cost 3


def test_multi_spike_counts_cost_k_events():
    """Several spikes in one step (Sinabs' MultiSpike) are k events downstream, as Sinabs counts synops."""
    w1, w2 = np.array([[3.0], [1.5], [0.5]], np.float32), np.array([[1.0, 0.0, 2.0]], np.float32)
    nodes = {"input": nir.Input(input_type={"input": np.array([1])}), "fc1": nir.Linear(weight=w1),
             "if1": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)), "fc2": nir.Linear(weight=w2),
             "if2": nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1)),
             "output": nir.Output(output_type={"output": np.array([1])})}
    order = list(nodes)
    graph = build_graph(nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:])), type_check=False))
    run = simulate(lower_graph(graph, resolve_options(preset="sinabs")), np.ones((2, 1, 1), np.float32), record=["if1"])
    np.testing.assert_array_equal(run.recordings["if1"]["s"][:, 0], [[3, 1, 0], [3, 2, 1]])
    counts = run.counts.per_node
    np.testing.assert_array_equal(counts["if1"]["spikes_out"][:, 0], [4, 6])
    np.testing.assert_array_equal(counts["fc2"]["synaptic_events"][:, 0], [4, 6])  # fan-out 1, k spikes cost k
    np.testing.assert_array_equal(counts["fc2"]["effective_macs"][:, 0], [1, 2])  # counts are not binary: MACs


def _tiny_conv_program():
    rng = np.random.default_rng(4)
    w = rng.normal(size=(3, 2, 3, 3)) * (rng.random((3, 2, 3, 3)) < 0.7)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 5, 5])}),
        "conv": nir.Conv2d(input_shape=(5, 5), weight=w, stride=2, padding=1, dilation=1, groups=1, bias=np.zeros(3)),
        "if": nir.IF(r=np.ones((3, 3, 3)), v_threshold=np.full((3, 3, 3), 0.5), v_reset=np.zeros((3, 3, 3))),
        "output": nir.Output(output_type={"output": np.array([3, 3, 3])}),
    }
    edges = [("input", "conv"), ("conv", "if"), ("if", "output")]
    graph = build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return w, lower_graph(graph, resolve_options(dt=1.0))


@pytest.mark.parametrize("mode", ["float", "loihi"])
def test_tiny_conv_fan_out_by_brute_force(mode):
    w, program = _tiny_conv_program()
    fan = np.zeros((2, 5, 5), int)  # walk every output pixel and tap: which input does it read?
    nonzero = np.zeros((2, 5, 5), int)
    for oc in range(3):
        for oh in range(3):
            for ow in range(3):
                for ic in range(2):
                    for kh in range(3):
                        for kw in range(3):
                            h, v = 2 * oh - 1 + kh, 2 * ow - 1 + kw
                            if 0 <= h < 5 and 0 <= v < 5:
                                fan[ic, h, v] += 1
                                nonzero[ic, h, v] += w[oc, ic, kh, kw] != 0
    x = (np.random.default_rng(9).random((15, 4, 2, 5, 5)) < 0.4).astype(np.float32)
    run = simulate(program, x, mode=mode, record=["if"])
    c = run.counts.per_node
    np.testing.assert_array_equal(c["conv"]["synaptic_events"], np.einsum("tbchw,chw->tb", x, fan))
    np.testing.assert_array_equal(c["conv"]["effective_acs"], np.einsum("tbchw,chw->tb", x, nonzero))
    np.testing.assert_array_equal(c["conv"]["dense_macs"], np.full((15, 4), fan.sum()))
    np.testing.assert_array_equal(c["if"]["spikes_out"], run.recordings["if"]["s"].reshape(15, 4, -1).sum(-1))
    np.testing.assert_array_equal(c["if"]["neuron_updates"], np.full((15, 4), 27))
    assert c["if"]["spikes_out"].sum() > 0
