"""Lava fixed_pt through `run_lava` against the simulator's loihi mode: bit-identical, integers and all.

Both run the integers of `ir.quantise` with Lava's timing (every connection one step late). Three
networks with random integer weights, each exercising a different part of the lowering:
- dense: stock LIFs with a leak, a bias (bias_mant / bias_exp) and an initial potential;
- conv: Conv2d -> CubaLIF -> SumPool2d -> Flatten -> Affine -> IF with subtractive reset (our
  ProgramNeuron's bit-accurate model), so the Affine's columns follow Lava's (X, Y, C) order;
- recurrent: a CubaLIF with a biased Dense loop onto itself (the synapse bias and the loop's delay);
- multi: Sinabs' IF (several spikes per step as one graded spike, firing at v >= theta).
"""

from __future__ import annotations

import dataclasses

import nir
import numpy as np
import pytest

from lava_nets import chain, io, lif, lower_nodes, requires_lava
from spikestack.ir.quantise import quantise_program
from spikestack.backends.lava import run_lava
from spikestack.simulators import simulate

pytestmark = [pytest.mark.lava, requires_lava]
T, B = 80, 2


def _ints(rng, lo, hi, shape):
    return rng.integers(lo, hi + 1, shape).astype(np.float32)


def _cuba(shape, threshold, v_leak=0.0):
    full = lambda value: np.full(shape, value, dtype=np.float32)  # noqa: E731
    return nir.CubaLIF(tau_syn=full(2e-3), tau_mem=full(5e-3), r=full(1.0), v_leak=full(v_leak),
                       v_threshold=full(threshold), v_reset=full(0.0), w_in=full(1.0))


def _dense(rng):
    inp, _ = io([16])
    nodes = {"input": inp, "fc1": nir.Affine(weight=_ints(rng, -30, 60, (24, 16)), bias=_ints(rng, -3, 3, (24,))),
             "lif1": lif(24, 5e-3, 40.0, v_leak=2.0), "fc2": nir.Affine(weight=_ints(rng, -20, 40, (8, 24)), bias=np.zeros(8)),
             "lif2": lif(8, 4e-3, 30.0), "output": nir.Output(output_type={"output": np.array([8])})}
    program = lower_nodes(nodes, chain(list(nodes)), dt=1e-3, initial_potential=0.25)
    return program, (16,), ("lif1", "lif2")


def _conv(rng):
    inp, _ = io([2, 8, 8])
    nodes = {
        "input": inp,
        "conv": nir.Conv2d(input_shape=(8, 8), weight=_ints(rng, -20, 40, (4, 2, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.zeros(4)),
        "cuba": _cuba((4, 8, 8), 12.0, v_leak=1.0),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=_ints(rng, -12, 30, (6, 64)), bias=np.zeros(6)),
        "if": nir.IF(r=np.ones(6), v_threshold=np.full(6, 20.0), v_reset=np.zeros(6)),
        "output": nir.Output(output_type={"output": np.array([6])}),
    }
    program = lower_nodes(nodes, chain(list(nodes)), dt=1e-3, reset="subtract")
    return program, (2, 8, 8), ("cuba", "if")


def _recurrent(rng):
    inp, _ = io([10])
    nodes = {"input": inp, "fc": nir.Affine(weight=_ints(rng, -20, 50, (20, 10)), bias=np.zeros(20)),
             "cuba": _cuba(20, 6.0), "rec": nir.Affine(weight=_ints(rng, -25, 30, (20, 20)), bias=_ints(rng, -2, 2, (20,))),
             "output": nir.Output(output_type={"output": np.array([20])})}
    edges = chain(["input", "fc", "cuba", "output"]) + [("cuba", "rec"), ("rec", "cuba")]
    return lower_nodes(nodes, edges, dt=1e-3), (10,), ("cuba",)


def _multi(rng):
    """Sinabs' neurons: several spikes per step (one graded spike of floor(v / theta)) at v >= theta."""
    inp, _ = io([12])
    nodes = {"input": inp, "fc1": nir.Affine(weight=_ints(rng, -20, 60, (16, 12)), bias=np.zeros(16)),
             "if1": nir.IF(r=np.ones(16), v_threshold=np.full(16, 20.0), v_reset=np.zeros(16)),
             "fc2": nir.Affine(weight=_ints(rng, -10, 30, (6, 16)), bias=np.zeros(6)),
             "if2": nir.IF(r=np.ones(6), v_threshold=np.full(6, 25.0), v_reset=np.zeros(6)),
             "output": nir.Output(output_type={"output": np.array([6])})}
    program = lower_nodes(nodes, chain(list(nodes)), preset="sinabs")
    return program, (12,), ("if1", "if2")


def _netx(rng):
    """The dense net in netx's integers (docs/netx.md): exponent 0 and odd mixed-sign weights, which a
    Dense of 9 weight bits keeps (an 8-bit one drops their lowest bit)."""
    program, shape, neurons = _dense(rng)
    program = dataclasses.replace(program, options=dataclasses.replace(program.options, fixed_point="netx",
                                                                       initial_potential=0.0))
    odd = [q.weight for q in quantise_program(program)[0].synapses.values() if np.any(q.weight % 2)]
    assert odd and all(q.min() < 0 < q.max() for q in odd)  # the case an 8-bit Dense would truncate
    return program, shape, neurons


@pytest.mark.parametrize("make", [_dense, _conv, _recurrent, _multi, _netx],
                         ids=["dense", "conv", "recurrent", "multi", "netx"])
def test_fixed_point_is_bit_identical_to_the_simulators_loihi_mode(make):
    rng = np.random.default_rng(7)
    program, shape, neurons = make(rng)
    x = (rng.random((T, B, *shape)) < 0.3).astype(np.int64)
    lava = run_lava(program, x, "loihi", record=neurons, progress=False)
    sim = simulate(program, x, "loihi", record=neurons)
    assert lava.output.sum() > 5  # the output layer spikes: the comparison is not vacuous
    if make is _multi:  # graded spikes really carry counts > 1 through Lava's connections
        assert sim.recordings["if1"]["s"].max() > 1 and lava.recordings["if1"]["s"].max() > 1
    np.testing.assert_array_equal(lava.output, sim.output)
    for name in neurons:
        assert set(lava.recordings[name]) == set(sim.recordings[name])
        for key, values in sim.recordings[name].items():
            np.testing.assert_array_equal(lava.recordings[name][key], values, err_msg=f"{name} {key}")
    for node, metrics in sim.counts.per_node.items():
        for metric, values in metrics.items():
            np.testing.assert_array_equal(lava.counts.per_node[node][metric], values, err_msg=f"{node} {metric}")
