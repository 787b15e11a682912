"""NIR's Threshold on the Lava backend (issue 18's new primitive): a population that remembers nothing
(`neurons.thresholds_as_neurons`), held to the simulator spike for spike in both arithmetics.

Each net puts a Threshold between two weighted layers, so its spikes decide what the LIF after it
does: a wrong compare, a step of delay or a memory left in v would change the output.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

from lava_nets import chain, io, lif, lower_nodes, requires_lava
from spikestack.backends.lava import run_lava
from spikestack.backends.lava.lower import SUPPORTED_PRIMITIVES, lower_program
from spikestack.errors import UnsupportedError
from spikestack.ir.quantise import quantise_program
from spikestack.simulators import simulate

T, B = 60, 2


def _net(level, weight_high: int = 40, n_in: int = 12):
    """input -> fc1 -> threshold -> fc2 -> lif -> output, integer weights (exact in both arithmetics)."""
    rng = np.random.default_rng(3)
    weight = lambda shape, lo: rng.integers(lo, weight_high + 1, shape).astype(np.float32)  # noqa: E731
    inp, _ = io([n_in])
    nodes = {"input": inp, "fc1": nir.Affine(weight=weight((10, n_in), -20), bias=np.zeros(10)),
             "threshold": nir.Threshold(threshold=np.asarray(level, dtype=np.float32)),
             "fc2": nir.Affine(weight=weight((4, 10), -5), bias=np.zeros(4)),
             "lif": lif(4, 5e-3, 30.0), "output": nir.Output(output_type={"output": np.array([4])})}
    return lower_nodes(nodes, chain(list(nodes)), dt=1e-3), (n_in,)


def test_threshold_is_a_primitive_the_lava_backend_lowers():
    assert "Threshold" in SUPPORTED_PRIMITIVES


@pytest.mark.lava
@requires_lava
@pytest.mark.parametrize("mode", ["float", "loihi"])
@pytest.mark.parametrize("level", [25.0, np.linspace(5.0, 60.0, 10)], ids=["one level", "a level per neuron"])
def test_threshold_spikes_equal_the_simulator(mode, level):
    program, shape = _net(level)
    x = (np.random.default_rng(8).random((T, B, *shape)) < 0.3).astype(np.float64)
    lava = run_lava(program, x, mode, record=("threshold", "lif"), progress=False)
    sim = simulate(program, x, mode, record=("threshold", "lif"), **({"dtype": np.float64} if mode == "float" else {}))
    fired = sim.recordings["threshold"]["out"]
    assert 0 < fired.mean() < 1, "the threshold must both fire and stay silent for the test to mean something"
    assert sim.output.sum() > 5
    np.testing.assert_array_equal(lava.recordings["threshold"]["out"], fired)
    np.testing.assert_array_equal(lava.recordings["lif"]["s"], sim.recordings["lif"]["s"])
    np.testing.assert_array_equal(lava.output, sim.output)
    for node, metrics in sim.counts.per_node.items():
        for metric, values in metrics.items():
            np.testing.assert_array_equal(lava.counts.per_node[node][metric], values, err_msg=f"{node} {metric}")


def test_loihi_refuses_a_threshold_whose_input_can_pass_24_bits():
    """2000 inputs of 8-bit weights: their sum (about 2.5e5 at most) shifted by 6 could pass Loihi's
    24-bit v, where the simulator's compare does not saturate; refused, naming the node, rather
    than run differently."""
    program, _ = _net(1e4, weight_high=4000, n_in=2000)
    qprog = quantise_program(program)[0]
    assert np.abs(qprog.synapses["fc1"].weight).sum(axis=1).max() >= 1 << 17
    with pytest.raises(UnsupportedError, match=r"node 'threshold'.*past the \+-131072 that Loihi's 24-bit v holds"):
        lower_program(program, "loihi", T, qprog=qprog)
    lower_program(program, "float", T)  # float has no such bound
