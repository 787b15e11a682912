"""Residual graphs on Lava: the TTRBR converter's ResNet (frontend/methods/ttrbr.py) on digits, with
and without the restructuring pass, and the hand-built graph of test_lower.py.

A shortcut reaches the block's sum through fewer Lava synapse layers than the branch, each one step
late on Lava; float mode delays the shorter paths (align.py) and must then equal the simulator's
float mode (float64), the independent reference, spike for spike in every layer and step, and in
every count. Fixed mode keeps Lava's timing, which the simulator's loihi mode reproduces, so the
plain conversion is bit-identical to loihi mode with no alignment; the restructured graph sums
values of different integer scales, which `ir.quantise` refuses for both.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

from lava_nets import chain, io, lower_nodes, requires_lava, residual_hand_graph
from spikestack.backends.lava import run_lava
from spikestack.backends.lava.lower import lower_program
from spikestack.errors import UnsupportedError
from spikestack.frontend.data import load_digits
from spikestack.frontend.methods import ResNetSpec, build_resnet, convert_ann
from spikestack.frontend.train import fit, seed_everything, torch_threads
from spikestack.ir import build_graph, lower_graph, resolve_options
from spikestack.simulators import simulate

pytestmark = [pytest.mark.lava, requires_lava]
# Three blocks: two with an identity shortcut (a Scale of spikes), one with a 1x1 conv shortcut.
SPEC = ResNetSpec(in_shape=(1, 8, 8), width=4, blocks=3, stages=2, stem_stride=1)
T, B = 8, 3


@pytest.fixture(scope="module")
def resnets():
    """The SNN of a briefly trained ResNet, converted as is and restructured: {restructure: Program}."""
    digits = load_digits(flatten=False)
    seed_everything(0)
    model = build_resnet(SPEC)
    with torch_threads(1):
        fit(model, digits, lambda m, x: m(x), lambda m, x: m(x).argmax(1), epochs=1, lr=3e-3, progress=False)
        programs = {}
        for restructure in (False, True):
            conversion = convert_ann(model.eval(), digits.x_train[:64], steps=T, threshold="percentile",
                                     restructure=restructure)
            graph = build_graph(conversion.graph)
            programs[restructure] = lower_graph(graph, resolve_options(graph.metadata))
    return programs, digits.x_test[:B]


def if_(threshold: float) -> nir.IF:
    return nir.IF(r=np.ones(3), v_threshold=np.full(3, threshold), v_reset=np.zeros(3))


def _assert_same_run(lava, sim, neurons) -> None:
    for name, values in sim.outputs.items():
        np.testing.assert_array_equal(lava.outputs[name], values, err_msg=name)
    for name in neurons:
        for key, values in sim.recordings[name].items():
            if key == "s":
                np.testing.assert_array_equal(lava.recordings[name][key], values, err_msg=name)
            else:  # v: Lava's convolution sums in another order than torch's (1e-15 here)
                np.testing.assert_allclose(lava.recordings[name][key], values, rtol=0, atol=1e-9, err_msg=name)
    for node, metrics in sim.counts.per_node.items():
        for metric, values in metrics.items():
            np.testing.assert_array_equal(lava.counts.per_node[node][metric], values, err_msg=f"{node} {metric}")


@pytest.mark.parametrize("restructure", [False, True], ids=["plain", "restructured"])
def test_resnet_float_spikes_equal_the_simulator_in_every_layer(resnets, restructure):
    programs, images = resnets
    program = programs[restructure]
    neurons = tuple(op.name for op in program.neuron_ops)
    x = np.broadcast_to(images, (T, *images.shape)).astype(np.float64)  # the image as a constant current
    lava = run_lava(program, x, "float", record=neurons, progress=False)
    sim = simulate(program, x, "float", record=neurons, dtype=np.float64)
    hidden = sum(sim.recordings[name]["s"].sum() for name in neurons[:-1])
    assert hidden > 200  # the hidden layers spike: the comparison is not vacuous
    _assert_same_run(lava, sim, neurons)


def test_resnet_fixed_point_is_bit_identical_to_the_simulators_loihi_mode(resnets):
    programs, images = resnets
    program = programs[False]
    neurons = tuple(op.name for op in program.neuron_ops)
    x = (np.random.default_rng(3).random((T, *images.shape)) < images).astype(np.int64)  # rate-coded pixels
    lava = run_lava(program, x, "loihi", record=neurons, progress=False)
    sim = simulate(program, x, "loihi", record=neurons)
    assert sum(sim.recordings[name]["s"].sum() for name in neurons[:-1]) > 100
    for name in neurons:
        for key, values in sim.recordings[name].items():  # Lava's integers: all of them equal
            np.testing.assert_array_equal(lava.recordings[name][key], values, err_msg=f"{name} {key}")
    _assert_same_run(lava, sim, ())


def test_restructured_resnet_in_fixed_point_is_refused_naming_the_node(resnets):
    programs, images = resnets
    x = np.zeros((T, *images.shape), dtype=np.int64)
    with pytest.raises(UnsupportedError, match=r"^node '\w+_stream'"):
        run_lava(programs[True], x, "loihi", progress=False)


def test_hand_built_residual_graph_equals_the_simulator():
    """Every way a path is delayed at once (test_lower.py counts them): a delay folded into a Dense,
    relays of two steps, one of them for spikes straight into a neuron; two samples, so the relays'
    buffers are also reset between samples."""
    program = residual_hand_graph()
    x = (np.random.default_rng(1).random((40, 2, 3)) < 0.4).astype(np.float64)
    record = ("lif1", "lif2", "sum", "lif_short")
    lava = run_lava(program, x, "float", record=record, progress=False)
    sim = simulate(program, x, "float", record=record, dtype=np.float64)
    assert sim.outputs["output"].sum() > 5 and sim.recordings["sum"]["v"].std() > 0.1
    _assert_same_run(lava, sim, record)


def test_delays_into_a_neuron_and_into_a_sum_equal_the_simulator():
    """A Delay op applied by a relay instead of the next DelayDense: straight into a neuron (its own
    relay, 1 + d steps), and into a Linear that also sums the undelayed input (the Delay's relay
    then also waits the step that aligns it, and the input gets a relay of one step)."""
    inp, _ = io([3])
    out = lambda: nir.Output(output_type={"output": np.array([3])})  # noqa: E731
    nodes = {"input": inp, "d1": nir.Delay(delay=np.array([0.0, 2.0, 4.0])), "if1": if_(0.5), "o1": out(),
             "d2": nir.Delay(delay=np.array([1.0, 3.0, 0.0])), "mix": nir.Linear(weight=np.diag([0.5, 0.75, 1.0])),
             "if2": if_(0.9), "o2": out()}
    edges = chain(["input", "d1", "if1", "o1"]) + chain(["input", "d2", "mix", "if2", "o2"]) + [("input", "mix")]
    program = lower_nodes(nodes, edges, dt=1.0, reset="subtract")
    plan = lower_program(program, "float", 30)
    assert plan.nodes["d1"].kind == "relay" and plan.nodes["d1"].params["steps"].tolist() == [1, 3, 5]
    assert plan.nodes["mix.from.d2"].params["steps"].tolist() == [2, 4, 1]
    assert plan.nodes["mix.from.input"].params["steps"].tolist() == [1, 1, 1]
    x = (np.random.default_rng(2).random((30, 2, 3)) < 0.5).astype(np.float64)
    lava = run_lava(program, x, "float", progress=False)
    sim = simulate(program, x, "float", dtype=np.float64)
    assert sim.outputs["o1"].sum() > 10 and sim.outputs["o2"].sum() > 10
    _assert_same_run(lava, sim, ())
