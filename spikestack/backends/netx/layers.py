"""A quantised Program as lava-dl netx layers, or the one reason it cannot be.

A netx network (lava-dl 0.6.0, `netx/hdf5.py`) is a chain: an optional input layer (a shape), then
layers that are each one synapse and one population of Lava's CUBA LIF, with `flatten` between a
convolution and a dense layer. `plan_layers` walks the Program from its Input along that chain and
takes every integer from the `QuantisedProgram` (quantised with `fixed_point="netx"`: weight
exponent 0, bias exponent 6), so the file holds exactly what loihi mode runs.

What maps: Affine/Linear -> `dense`; a neuron that also feeds itself through an Affine/Linear ->
`dense_rec`; Conv2d -> `conv`; SumPool2d/AvgPool2d into a neuron -> `conv` with its integer kernel,
one group per channel (exact: the same integers loihi mode sums); Flatten -> `flatten`. What netx's
neuron cannot do is refused, naming the node: it is Lava's `LIF` (`get_neuron_params`): v resets to
0 in the step it fires at v > vth, u and v start at 0, one decay, threshold and bias exponent per
layer, no bias on the synapse. netx has no pooling, delay, scale, threshold, branch or non-spiking
layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikestack.errors import UnsupportedError
from spikestack.ir.fixed import NETX_BIAS_EXP, U_DECAY_OFFSET
from spikestack.ir.primitives import ConvSynapse, Role
from spikestack.ir.program import Op, Program
from spikestack.ir.quantise import QuantisedProgram


@dataclass(frozen=True)
class NetxNeuron:
    """A layer's CUBA neuron group as netx reads it: du = i_decay - 1, dv = v_decay, vth = v_th_mant."""

    i_decay: int
    v_decay: int
    v_th_mant: int


@dataclass(frozen=True)
class NetxLayer:
    """One `layer/<i>` group. Shapes and weights are in our (torch) layout: (C, H, W) and
    (C_out, C_in / groups, kh, kw); the writer reverses what netx reads in (x, y) order."""

    kind: str  # "input", "dense", "dense_rec", "conv" or "flatten"
    node: str  # the op it came from: the Input, the Flatten, or the layer's neuron
    shape: tuple[int, ...]
    weight: np.ndarray | None = None  # int64
    weight_rec: np.ndarray | None = None  # int64 (n, n): dense_rec only
    bias: np.ndarray | None = None  # int64 bias mantissas, one per neuron (exponent 6)
    neuron: NetxNeuron | None = None
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] | None = None
    dilation: tuple[int, int] | None = None
    groups: int | None = None


def plan_layers(quantised: QuantisedProgram) -> list[NetxLayer]:
    """The netx layers of a quantised Program, in order; UnsupportedError naming the node otherwise."""
    program = quantised.program
    inputs = [op for op in program.ops if op.primitive.is_input]
    if len(inputs) != 1:
        raise UnsupportedError(f"a netx network has one input; this graph has {len(inputs)}")
    op = inputs[0]
    layers = [NetxLayer("input", op.name, tuple(op.out_shape))]
    while True:
        nxt = _next_op(program, op)
        if nxt is None or nxt.primitive.is_output:
            break
        if nxt.primitive.role is Role.RESHAPE:  # netx flattens (C, H, W) as torch does; a 1-D input needs nothing
            if len(nxt.in_shape) > 1:
                layers.append(NetxLayer("flatten", nxt.name, tuple(nxt.out_shape)))
            op = nxt
            continue
        if not nxt.primitive.is_synapse:
            raise UnsupportedError(f"netx layers start with a synapse; a {nxt.kind} here has no netx form",
                                   node=nxt.name)
        neuron = _next_op(program, nxt)
        if neuron is None or not neuron.is_neuron:
            what = "nothing" if neuron is None else f"a {neuron.kind}"
            pool = isinstance(nxt.synapse, ConvSynapse) and nxt.synapse.pool
            reason = ("netx has no pooling layer, and a pool that feeds no neuron layer cannot be one of its conv "
                      "layers" if pool else "every netx synapse feeds a neuron layer")
            raise UnsupportedError(f"{reason} (it feeds {what})", node=nxt.name)
        layers.append(_layer(quantised, nxt, neuron))
        op = neuron
    if len(layers) < 2 or layers[-1].kind in ("input", "flatten"):
        raise UnsupportedError("a netx network ends in a neuron layer", node=op.name)
    return layers


def _next_op(program: Program, op: Op) -> Op | None:
    """The one op `op` feeds forward; a synapse that only returns to `op` on a back edge is its
    recurrent synapse (checked by `_layer`), not the next layer."""
    back = {s.name for s in op.sources if s.delay}
    forward = [program.op(c) for c in program.consumers(op.name)
               if c not in back and any(s.name == op.name and not s.delay for s in program.op(c).sources)]
    if len(forward) > 1:
        raise UnsupportedError("netx layers form a chain; this op feeds "
                               + ", ".join(f"'{o.name}'" for o in forward), node=op.name)
    return forward[0] if forward else None


def _layer(quantised: QuantisedProgram, synapse: Op, neuron: Op) -> NetxLayer:
    feeds = [s for s in neuron.sources if s.name != synapse.name]
    recurrent = None
    if feeds:
        back = quantised.program.op(feeds[0].name)
        if len(feeds) > 1 or not back.primitive.is_dense or [s.name for s in back.sources] != [neuron.name]:
            raise UnsupportedError("a netx layer's neuron is fed by its synapse and at most one dense synapse from "
                                   "itself (dense_rec)", node=neuron.name)
        recurrent = back
    _check_neuron(neuron)
    ints = quantised.neurons[neuron.name]
    fed = [synapse] + ([recurrent] if recurrent is not None else [])
    for syn in fed:
        s_ints = quantised.synapses[syn.name]
        if s_ints.weight_exp != 0:
            raise UnsupportedError("netx weights have no exponent: quantise with fixed_point='netx'", node=syn.name)
        if not np.any(s_ints.weight):  # optimize_weight_bits divides by the largest weight
            raise UnsupportedError("lava-dl netx cannot load a layer whose weights are all zero", node=syn.name)
        if s_ints.bias is not None:
            raise UnsupportedError("netx has no synapse bias (a bias into a neuron with a synaptic current)",
                                   node=syn.name)
    if np.any(ints.bias_exp != NETX_BIAS_EXP) and np.any(ints.bias_mant != 0):
        raise UnsupportedError(f"netx biases have exponent {NETX_BIAS_EXP}: quantise with fixed_point='netx'",
                               node=neuron.name)
    neuron_group = NetxNeuron(i_decay=_one(ints.du, "current decay", neuron) + U_DECAY_OFFSET,
                              v_decay=_one(ints.dv, "voltage decay", neuron),
                              v_th_mant=_one(ints.vth, "threshold", neuron))
    bias = np.broadcast_to(ints.bias_mant, neuron.out_shape).astype(np.int64) if np.any(ints.bias_mant != 0) else None
    weight = quantised.synapses[synapse.name].weight.astype(np.int64)
    shape = tuple(neuron.out_shape)
    common = dict(node=neuron.name, shape=shape, bias=bias, neuron=neuron_group)
    if synapse.primitive.is_dense:
        if recurrent is None:
            return NetxLayer("dense", weight=weight, **common)
        return NetxLayer("dense_rec", weight=weight, weight_rec=quantised.synapses[recurrent.name].weight.astype(np.int64),
                         **common)
    if recurrent is not None:
        raise UnsupportedError("netx's recurrent layer is dense only", node=neuron.name)
    if synapse.primitive.spatial_dims == 2:
        geometry = synapse.synapse
        return NetxLayer("conv", weight=weight, stride=tuple(geometry.stride), padding=tuple(geometry.padding),
                         dilation=tuple(geometry.dilation), groups=int(geometry.groups), **common)
    raise UnsupportedError(f"netx has no layer for a {synapse.kind}", node=synapse.name)


def _check_neuron(op: Op) -> None:
    """Lava's LIF as netx builds it, or the first option it lacks."""
    p = op.params
    problems = [
        (not p.spiking, "netx layers spike: a non-spiking readout has no netx form"),
        (p.reset == "subtract", "subtractive reset: netx's CUBA neurons (Lava's LIF) reset v to zero"),
        (p.v_reset is not None and np.any(p.v_reset != 0), "netx neurons reset to 0, not to a v_reset"),
        (np.any(p.v_init != 0), "an initial potential: netx neurons start at v = 0"),
        (p.threshold != ">", "netx neurons fire at v > threshold, not >="),
        (p.spikes_per_step != "one", "netx neurons fire one spike per step"),
        (p.has_current and not p.current_first, "netx's CUBA voltage integrates this step's current"),
    ]
    for bad, reason in problems:
        if bad:
            raise UnsupportedError(reason, node=op.name)


def _one(values, what: str, op: Op) -> int:
    flat = np.unique(np.asarray(values))
    if flat.size != 1:
        raise UnsupportedError(f"netx holds one {what} per layer; this layer's neurons have {flat.size}", node=op.name)
    return int(flat[0])
