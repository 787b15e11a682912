"""The lowering to a LavaPlan, without running Lava: layouts, stock vs custom neurons, alignment, refusals."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lava_nets import chain, io, lif, lower_file, lower_nodes, residual_hand_graph
from spikestack.backends.lava import SUPPORTED_PRIMITIVES
from spikestack.backends.lava.layout import conv_kernel_to_lava, from_lava, lava_layout, to_lava, xy
from spikestack.backends.lava.lower import lower_program
from spikestack.errors import OptionsError, UnsupportedError
from spikestack.ir.quantise import quantise_program


def test_supported_primitives_are_nir_type_names():
    assert isinstance(SUPPORTED_PRIMITIVES, frozenset)
    assert all(isinstance(getattr(nir, name), type) for name in SUPPORTED_PRIMITIVES)
    assert {"Affine", "Conv2d", "SumPool2d", "Flatten", "Delay", "LIF", "IF", "LI", "CubaLIF"} <= SUPPORTED_PRIMITIVES


def test_a_role_the_backend_cannot_lower_names_the_node(monkeypatch):
    """Every NIR primitive lowers today; an op whose role has no entry in LOWER_BY_ROLE (as a new
    primitive's would before its lowering is written) is refused, naming the node."""
    from spikestack.backends.lava import lower
    from spikestack.ir.primitives import Role

    monkeypatch.delitem(lower.LOWER_BY_ROLE, Role.THRESHOLD)
    inp, out = io([3])
    nodes = {"input": inp, "thr": nir.Threshold(threshold=np.ones(3)), "output": out}
    program = lower_nodes(nodes, chain(["input", "thr", "output"]), dt=1.0)
    with pytest.raises(UnsupportedError, match="node 'thr'.*primitive 'Threshold' is not supported by the Lava backend"):
        lower_program(program, "float", 10)


def test_one_mode_name_per_arithmetic_and_fixed_only_as_the_pipelines_alias():
    """The backend speaks the simulator's names; only `MODE_NAMES` (CLI, pipeline) takes "fixed"."""
    from spikestack.backends.lava import run_lava
    from spikestack.pipeline import MODE_NAMES

    assert MODE_NAMES["lava"] == MODE_NAMES["sim"] == {"float": "float", "loihi": "loihi", "fixed": "loihi"}
    inp, out = io([3])
    program = lower_nodes({"input": inp, "fc": nir.Linear(weight=np.eye(3)), "lif": lif(3, 1.0, 1.0), "output": out},
                          chain(["input", "fc", "lif", "output"]), dt=1.0)
    with pytest.raises(OptionsError, match="mode must be one of float, loihi; got 'fixed'"):
        lower_program(program, "fixed", 10)
    with pytest.raises(OptionsError, match="mode must be one of float, loihi; got 'fixed'"):
        run_lava(program, np.zeros((5, 1, 3)), "fixed", progress=False)


def test_pools_become_depthwise_lava_convs_of_ones():
    """A pool's Conv is its `ConvSynapse`: one group per channel, a kernel of ones (an average's
    divided by the window's area), stride and kernel in Lava's (X, Y) order."""
    inp, _ = io([3, 4, 6])
    nodes = {"input": inp, "avg": nir.AvgPool2d(kernel_size=np.array([2, 3]), stride=np.array([2, 3]), padding=np.array([0, 0])),
             "if1": nir.IF(r=np.ones((3, 2, 2)), v_threshold=np.ones((3, 2, 2)), v_reset=np.zeros((3, 2, 2))),
             "sum": nir.SumPool2d(kernel_size=np.array([1, 2]), stride=np.array([1, 2]), padding=np.array([0, 0])),
             "if2": nir.IF(r=np.ones((3, 2, 1)), v_threshold=np.ones((3, 2, 1)), v_reset=np.zeros((3, 2, 1))),
             "output": nir.Output(output_type={"output": np.array([3, 2, 1])})}
    plan = lower_program(lower_nodes(nodes, chain(list(nodes)), dt=1.0), "float", 10)
    avg, total = plan.nodes["avg"].params, plan.nodes["sum"].params
    assert (plan.nodes["avg"].kind, avg["groups"], avg["stride"], avg["weight"].shape) == ("conv", 3, (3, 2), (3, 3, 2, 1))
    assert np.all(avg["weight"] == 1 / 6)
    assert (total["groups"], total["stride"], total["weight"].shape) == (3, (2, 1), (3, 2, 1, 1))
    assert np.all(total["weight"] == 1.0)


@pytest.mark.parametrize("ndim", [1, 2])
def test_conv_kernel_and_layout_reproduce_torch_under_lavas_convolution(ndim):
    """Lava's own scipy convolution, on (X, Y, C) data with our kernel, equals torch's conv1d/conv2d."""
    utils = pytest.importorskip("lava.proc.conv.utils")
    rng = np.random.default_rng(0)
    if ndim == 2:
        x, weight = rng.normal(size=(3, 9, 7)), rng.normal(size=(4, 3, 3, 2))
        stride, padding, dilation = (2, 1), (1, 0), (1, 2)
        expected = F.conv2d(torch.tensor(x)[None], torch.tensor(weight), stride=stride, padding=padding, dilation=dilation)[0]
    else:
        x, weight = rng.normal(size=(3, 11)), rng.normal(size=(4, 3, 3))
        stride, padding, dilation = 2, 2, 2
        expected = F.conv1d(torch.tensor(x)[None], torch.tensor(weight), stride=stride, padding=padding, dilation=dilation)[0]
    lava_in, order = lava_layout(x.shape)
    kernel = conv_kernel_to_lava(weight)
    got = utils.conv_scipy(to_lava(x, x.shape, lava_in, order), kernel, kernel.shape[1:3], xy(stride, ndim),
                           xy(padding, ndim, 0), xy(dilation, ndim), 1)
    out_shape, out_order = lava_layout(tuple(expected.shape))
    assert got.shape == out_shape
    np.testing.assert_allclose(from_lava(got, 3, out_order, tuple(expected.shape)), expected.numpy(), atol=1e-12)


def test_flatten_of_an_image_permutes_the_dense_columns():
    """Lava flattens (X, Y, C); NIR flattens (C, H, W): element (c, h, w) sits at (w H + h) C + c."""
    shape = (2, 3, 4)
    inp, _ = io(list(shape))
    weight = np.arange(5 * 24, dtype=np.float32).reshape(5, 24)
    nodes = {"input": inp, "if": nir.IF(r=np.ones(shape), v_threshold=np.ones(shape), v_reset=np.zeros(shape)),
             "flat": nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1),
             "fc": nir.Linear(weight=weight), "lif": lif(5, 1.0, 1.0),
             "output": nir.Output(output_type={"output": np.array([5])})}
    program = lower_nodes(nodes, chain(["input", "if", "flat", "fc", "lif", "output"]), dt=0.5)
    plan = lower_program(program, "float", 10)
    dense = plan.nodes["fc"].params["weights"]
    c, h, w = 1, 2, 3
    assert np.array_equal(dense[:, (w * 3 + h) * 2 + c], weight[:, (c * 3 + h) * 4 + w] * 0.5)  # gain dt/tau folded


def test_stock_lif_where_lava_computes_the_same_custom_elsewhere(fixtures_dir):
    lif_plan = lower_program(lower_file(fixtures_dir / "lif_norse.nir", "norse@1.0", dt=1e-4), "float", 10)
    neuron = lif_plan.nodes["1"]
    assert neuron.kind == "lif"
    assert (neuron.params["du"], neuron.params["vth"]) == (1.0, pytest.approx(0.1))
    assert neuron.params["dv"] == pytest.approx(0.04)
    assert lif_plan.nodes["0"].params["weights"][0, 0] == pytest.approx(0.04)  # gain folded into Dense
    cnn = lower_program(lower_file(fixtures_dir / "cnn_sinabs.nir", "sinabs"), "float", 10)
    assert (cnn.nodes["1"].kind, cnn.nodes["1"].note) == ("neuron", "immediate reset to v - threshold")
    assert [cnn.nodes[n].kind for n in ("0", "4", "9")] == ["conv", "conv", "dense"]


def test_float_mode_reads_each_output_after_its_synapse_layers(fixtures_dir):
    """cnn_sinabs: conv, conv, pool, conv, pool, affine, affine: the output arrives 7 steps late."""
    plan = lower_program(lower_file(fixtures_dir / "cnn_sinabs.nir", "sinabs"), "float", 100)
    assert plan.views["output"].valid_from == 7
    assert plan.n_steps == 107
    assert plan.nodes["12"].params["start"] == 7  # frozen until its first input arrives
    program = lower_file(fixtures_dir / "cnn_sinabs.nir", "sinabs")
    fixed = lower_program(program, "loihi", 100, qprog=quantise_program(program)[0])
    assert fixed.n_steps == 100  # fixed point keeps Lava's own timing


def test_alignment_delays_every_shorter_path_to_the_longest():
    """Counted by hand: fc3 reaches sum at Lava step 3 (fc1, fc2, fc3: one step each), skip at 2
    (fc1, skip), lif1's spikes at 2 (fc1, then the connection Lava needs into a neuron), short at
    1. So skip waits 1 step inside its own Dense (sum is its only consumer), lif1's spikes 1 step in
    a relay of 2 (its connection's step plus the wait), short 2 steps in a relay (lif_short reads it
    undelayed)."""
    plan = lower_program(residual_hand_graph(), "float", 10)
    assert plan.alignment == {"sum": {"skip": 1, "lif1": 1, "short": 2}}
    assert plan.nodes["skip"].kind == "delay_dense"
    assert np.all(plan.nodes["skip"].params["delays"] == 1)
    assert plan.views["skip"].valid_from == 3  # read one step later: it sends one step later
    for src in ("lif1", "short"):
        relay = plan.nodes[f"sum.from.{src}"]
        assert relay.kind == "relay" and relay.params["steps"].tolist() == [2, 2, 2]
        assert relay.inputs[0].proc == src
    assert [v.proc for v in plan.nodes["sum"].inputs] == ["fc3", "skip", "sum.from.lif1", "sum.from.short"]
    assert {v.valid_from for v in plan.nodes["sum"].inputs} == {3}
    assert plan.nodes["sum"].params["start"] == 3
    assert plan.views["lif_short"].valid_from == 1 and plan.nodes["lif_short"].inputs[0].proc == "short"
    assert plan.n_steps == 13


def test_a_loop_through_several_synapse_layers_names_the_node():
    with pytest.raises(UnsupportedError, match="node 'sum'.*loop back from 'back2' arrives at Lava step 4, 1 after"):
        lower_program(residual_hand_graph(loop=True), "float", 10)


def test_fixed_point_keeps_lavas_timing_where_paths_of_different_depth_meet():
    """The simulator's loihi mode sums a skip connection as Lava delivers it (early): nothing to align."""
    inp, out = io([3])
    rng = np.random.default_rng(0)
    nodes = {"input": inp, "fc1": nir.Linear(weight=rng.normal(size=(3, 3))), "lif1": lif(3, 0.01, 1.0),
             "fc2": nir.Linear(weight=rng.normal(size=(3, 3))), "skip": nir.Linear(weight=rng.normal(size=(3, 3))),
             "lif2": lif(3, 0.01, 1.0), "output": out}
    edges = chain(["input", "fc1", "lif1", "fc2", "lif2", "output"]) + [("input", "skip"), ("skip", "lif2")]
    program = lower_nodes(nodes, edges, dt=1e-3)
    fixed = lower_program(program, "loihi", 10, qprog=quantise_program(program)[0])
    assert (fixed.n_steps, fixed.alignment, fixed.nodes["skip"].kind) == (10, {}, "dense")
    assert lower_program(program, "float", 10).alignment == {"lif2": {"skip": 1}}
