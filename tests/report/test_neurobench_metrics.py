"""NeuroBench's metrics (`spikestack.report.neurobench`) counted by hand on networks small enough to
check on paper (as NeuroBench's own tests/test_metrics.py does); NeuroBench itself judges them on
larger nets in tests/peers/test_neurobench.py."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from spikestack.cli import main
from spikestack.errors import OptionsError
from spikestack.ir import Counts, LoweringOptions, build_graph, lower_graph, validate_graph
from spikestack.pipeline import run_statistics
from spikestack.report.neurobench import (
    FLOAT_BYTES, SNNTORCH_NEURON_BUFFERS, activation_sparsity, connection_sparsity, footprint, neurobench_metrics,
    synaptic_operations,
)
from spikestack.simulators import simulate

W = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, 1.0]], np.float32)  # 2x3, one zero


def _lif(shape) -> nir.LIF:
    return nir.LIF(tau=np.full(shape, 2.0), r=np.ones(shape), v_leak=np.zeros(shape), v_threshold=np.ones(shape),
                   v_reset=np.zeros(shape))


def _program(nodes: dict, order: list[str]):
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:])), type_check=False)
    return lower_graph(validate_graph(build_graph(graph)), LoweringOptions(dt=1.0))


@pytest.fixture()
def linear():
    """Input(3) -> Linear 2x3 (one zero weight) -> LIF(2) -> Output."""
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}), "fc": nir.Linear(weight=W), "lif": _lif(2),
             "output": nir.Output(output_type={"output": np.array([2])})}
    return _program(nodes, ["input", "fc", "lif", "output"])


@pytest.fixture()
def pooled():
    """Input(1x4x4) -> Conv2d 2x1x3x3 (pad 1, bias) -> IF -> SumPool 2 -> Flatten -> Affine 3x8 -> IF."""
    conv_w = np.ones((2, 1, 3, 3), np.float32)
    conv_w[0, 0, 0, 0] = 0.0
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
             "conv": nir.Conv2d(input_shape=(4, 4), weight=conv_w, stride=1, padding=1, dilation=1, groups=1,
                                bias=np.zeros(2, np.float32)),
             "if1": nir.IF(r=np.ones((2, 4, 4)), v_threshold=np.ones((2, 4, 4)), v_reset=np.zeros((2, 4, 4))),
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1),
             "fc": nir.Affine(weight=np.ones((3, 8), np.float32), bias=np.zeros(3, np.float32)),
             "if2": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)),
             "output": nir.Output(output_type={"output": np.array([3])})}
    return _program(nodes, ["input", "conv", "if1", "pool", "flat", "fc", "if2", "output"])


def test_connection_sparsity_is_zero_weights_over_weights(linear):
    assert connection_sparsity(linear) == round(1 / 6, 4)  # NeuroBench rounds to 4 decimals


def test_connection_sparsity_counts_convolutions_and_no_pool_or_bias(pooled):
    assert connection_sparsity(pooled) == round(1 / (18 + 24), 4)  # the pool's ones are no weights


def test_connection_sparsity_without_weights_is_none():
    nodes = {"input": nir.Input(input_type={"input": np.array([2])}), "lif": _lif(2),
             "output": nir.Output(output_type={"output": np.array([2])})}
    assert connection_sparsity(_program(nodes, ["input", "lif", "output"])) is None


def test_footprint_holds_weights_biases_and_snntorch_neuron_buffers(linear, pooled):
    neuron = 2 * 2 * FLOAT_BYTES + SNNTORCH_NEURON_BUFFERS  # a Leaky of 2: beta (2), threshold (2), 12 bytes
    assert footprint(linear) == 6 * FLOAT_BYTES + neuron
    # conv 18 + bias 2; IF (beta 1, threshold 32); pool nothing; Affine 24 + bias 3; IF (beta 1, threshold 3)
    expected = (18 + 2 + 24 + 3) * FLOAT_BYTES + (1 + 32) * FLOAT_BYTES + (1 + 3) * FLOAT_BYTES
    assert footprint(pooled) == expected + 2 * SNNTORCH_NEURON_BUFFERS


def test_synaptic_operations_by_hand(linear):
    """Sample 0: step 0 binary [1, 0, 1] reaches 2 + 2 non-zero weights (4 ACs), step 1 graded
    [0.5, 0, 0] reaches 2 (2 MACs); sample 1 is silent. Dense: 6 per step. Per sample: / 2."""
    x = np.zeros((2, 2, 3), np.float32)
    x[0, 0] = [1, 0, 1]
    x[1, 0] = [0.5, 0, 0]
    synops = synaptic_operations(linear, simulate(linear, x, count=True).counts)
    assert synops == {"Effective_MACs": 1.0, "Effective_ACs": 2.0, "Dense": 12.0}


def test_pools_count_no_synaptic_operations(pooled):
    """All-ones input, one step: a 3x3 kernel with padding 1 on 4x4 has 4*9 + 4*12 + 16 = 100 in-bounds
    taps per channel pair, 9 of them at the zero weight's tap; every IF neuron fires, so the pool sends
    4 spikes per position (counts, not 0/1: MACs) to the Affine's 24 weights; the pool adds nothing."""
    run = simulate(pooled, np.ones((1, 1, 1, 4, 4), np.float32), count=True)
    assert run.counts.per_node["pool"]["spikes_out"].sum() == 32  # 8 positions x 4 spikes
    assert synaptic_operations(pooled, run.counts) == {"Effective_MACs": 24.0, "Effective_ACs": 2 * 100 - 9.0,
                                                       "Dense": 2 * 100 + 24.0}


def test_activation_sparsity_by_hand(linear):
    """2 neurons, 2 steps, 1 sample, one spike: 3 of 4 activations are zero."""
    counts = Counts({"lif": {"spikes_out": np.array([[1], [0]])}})
    assert activation_sparsity(linear, counts) == 0.75
    many = Counts({"lif": {"spikes_out": np.array([[5], [0]])}})  # several spikes of one step: at most 2 non-zero
    assert activation_sparsity(linear, many) == 0.5


def test_activation_sparsity_is_the_share_of_silent_neuron_steps(linear):
    x = (np.random.default_rng(0).random((20, 3, 3)) < 0.5).astype(np.float32)
    run = simulate(linear, x, record=["lif"], count=True)
    assert activation_sparsity(linear, run.counts) == pytest.approx(1 - float((run.recordings["lif"]["s"] != 0).mean()))


def test_layout_is_neurobenchs(linear):
    run = simulate(linear, np.ones((2, 1, 3), np.float32), count=True)
    metrics = neurobench_metrics(linear, run.counts)
    assert list(metrics) == ["Footprint", "ConnectionSparsity", "ActivationSparsity", "SynapticOperations"]
    assert list(metrics["SynapticOperations"]) == ["Effective_MACs", "Effective_ACs", "Dense"]
    json.dumps(metrics)  # plain JSON types


def test_without_counts_is_one_line(linear):
    with pytest.raises(OptionsError, match="no counts"):
        synaptic_operations(linear, Counts())
    with pytest.raises(OptionsError, match="no 'spikes_out' counts for node 'lif'"):
        activation_sparsity(linear, Counts({"fc": {"spikes_out": np.zeros((1, 1))}}))


def test_run_statistics_refuses_an_unknown_format(linear):
    run = simulate(linear, np.ones((2, 1, 3), np.float32), count=True)
    with pytest.raises(OptionsError, match="format must be one of spikestack, neurobench"):
        run_statistics(run, linear, "onnx")
    assert run_statistics(run, linear, "neurobench") == neurobench_metrics(linear, run.counts)


def test_cli_format_neurobench_needs_stats(tmp_path, capsys):
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}), "fc": nir.Linear(weight=W),
                                "lif": _lif(2), "output": nir.Output(output_type={"output": np.array([2])})},
                         edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)
    nir.write(tmp_path / "g.nir", graph)
    np.save(tmp_path / "x.npy", np.ones((2, 1, 3), np.float32))
    argv = ["run", str(tmp_path / "g.nir"), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o.npz"),
            "--dt", "1", "--format", "neurobench"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give --stats" in err and not (tmp_path / "o.npz").exists()
    assert main(argv + ["--stats", str(tmp_path / "s.json")]) == 0
    written = json.loads((tmp_path / "s.json").read_text())
    assert written["ConnectionSparsity"] == round(1 / 6, 4) and written["SynapticOperations"]["Dense"] == 12.0
    # `energy --format neurobench` adds the same metrics, of the run it prices, beside energy.json
    energy = ["energy", str(tmp_path / "g.nir"), "--input", str(tmp_path / "x.npy"), "--dt", "1", "--chip", "loihi",
              "--out", str(tmp_path / "e"), "--format", "neurobench"]
    assert main(energy) == 0
    assert json.loads((tmp_path / "e" / "neurobench.json").read_text()) == written
    assert (tmp_path / "e" / "energy.json").is_file()
