"""Neuron operators of a Program -> Lava's stock LIF where it computes exactly the same, else our own.

Lava's LIF (float): u <- u (1 - du) + a_in;  v <- v (1 - dv) + u + bias;  spike if v > vth;  v <- 0.
A Program neuron (ir/program.py): i <- alpha_i i + gain_i x;  v <- alpha_v v + gain_v drive + bias_v.
They agree with du = 1 - alpha_i (du = 1 without a current: u is then just this step's input),
dv = 1 - alpha_v and the gains folded into the incoming weights: gain_v for kinds without a current,
gain_i * gain_v with one (u then holds gain_v * i, so v gets gain_v * i). Lava's du, dv and vth are
one number per population, its reset sets v to 0 in the step that spikes, and its bias counts from
the first step. Anything else (subtractive or delayed reset, nonzero v_reset, an initial potential,
per-neuron time constants, Norse's voltage-first CubaLIF, a bias that a Lava synapse cannot carry,
non-spiking readouts) runs in `ProgramNeuron` (processes.py), whose models call the ir's dynamics.
Folding rounds differently (sum of g w x against g times sum of w x): where v lands within float
rounding of the threshold, as integer weights with decimal gains can make it, a stock LIF may spike
where the simulator does not; a ProgramNeuron computes exactly what the simulator computes.

Fixed point starts from the integers of `ir.quantise` (`NeuronInts`), whose gains the quantiser has
already folded into the weights: the stock bit-accurate LIF runs them when du, dv and vth are one
number per population, the reset is Lava's and no synapse bias needs adding; else a ProgramNeuron.
The `*_obstacle` functions say why a neuron is not a stock LIF (the plan keeps it in `LavaNode.note`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spikestack.backends.lava.layout import to_lava
from spikestack.errors import UnsupportedError
from spikestack.ir.fixed import ACT_SHIFT, DECAY_MAX, DECAY_UNITY, U_DECAY_OFFSET, V_BITS, NeuronInts
from spikestack.ir.primitives import Role
from spikestack.ir.program import NeuronCoefficients, Op, Program
from spikestack.ir.quantise import QuantisedProgram
from spikestack.ir.shapes import Shape

_ARRAY_FIELDS = ("alpha_v", "gain_v", "bias_v", "v_init", "alpha_i", "gain_i", "v_threshold", "v_reset")


def _uniform(a: np.ndarray | None) -> bool:
    return a is None or bool(np.all(a == a.flat[0]))


def gain_of(c: NeuronCoefficients) -> np.ndarray:
    """What a stock LIF's incoming weights are multiplied by (NIR layout)."""
    return c.gain_i * c.gain_v if c.has_current else c.gain_v


def firing_obstacle(compare: str, spikes_per_step: str) -> str | None:
    """Lava's LIF sends one spike where v > threshold: anything else needs our ProgramNeuron."""
    if spikes_per_step != "one":
        return "several spikes per step (a graded spike)"
    return "fires at v >= threshold" if compare != ">" else None


def stock_lif_obstacle(op: Op, program: Program) -> str | None:
    """Why `op` cannot run as Lava's stock LIF in float mode, or None when it can."""
    c: NeuronCoefficients = op.params
    if not c.spiking:
        return "non-spiking readout"
    if c.reset != "zero" or c.reset_timing != "immediate" or np.any(c.v_reset != 0):
        return f"{c.reset_timing} reset to {'v - threshold' if c.reset == 'subtract' else 'v_reset'}"
    if c.has_current and c.cuba_order != "current_first":
        return "voltage integrates last step's current"
    if firing_obstacle(c.threshold, c.spikes_per_step):
        return firing_obstacle(c.threshold, c.spikes_per_step)
    if not all(_uniform(a) for a in (c.alpha_v, c.alpha_i, c.v_threshold)) or np.any(c.v_threshold < 0):
        return "per-neuron time constants or thresholds"
    # Float mode starts a neuron k synapse layers deep k steps late (run.py): Lava's LIF would leak
    # its initial potential and add its bias during those steps, ours stays frozen until then.
    if np.any(c.v_init != 0) or np.any(c.bias_v != 0):
        return "initial potential or bias"
    if c.has_current and np.any(c.gain_v == 0):
        return "zero voltage gain"
    gain = gain_of(c)
    for src in op.sources:
        source = program.op(src.name)
        bias = getattr(source.synapse, "bias", None)
        if not source.primitive.is_synapse or (bias is not None and np.any(bias)):
            return f"input from {source.kind} '{src.name}' with no weights to fold gains into"
        if np.any(gain != 1) and program.consumers(src.name) != (op.name,):
            return f"'{src.name}' also feeds other nodes, so the gain cannot be folded into its weights"
        # a convolution (or pool) shares its kernel across positions: one gain per output channel
        if np.any(gain != 1) and source.primitive.is_window and not _uniform_per_channel(gain, op.out_shape):
            return "gain varies within a channel of a convolution"
    return None


def _uniform_per_channel(gain: np.ndarray, shape: Shape) -> bool:
    g = np.broadcast_to(gain, shape).reshape(shape[0], -1)
    return bool(np.all(g == g[:, :1]))


def fold_for(op: Op, source: Op, lava_shape: Shape, order: np.ndarray) -> np.ndarray | None:
    """The factor for the rows (or output channels) of `source`'s weights, or None when all are 1."""
    gain = np.broadcast_to(gain_of(op.params), op.out_shape)
    if np.all(gain == 1):
        return None
    if source.primitive.is_window:  # one factor per output channel of the kernel
        return gain.reshape(gain.shape[0], -1)[:, 0].copy()
    return to_lava(gain, op.out_shape, lava_shape, order).reshape(-1)


def stock_lif_params(op: Op, lava_shape: Shape) -> dict:
    c: NeuronCoefficients = op.params
    return dict(
        shape=tuple(lava_shape), du=float(1 - c.alpha_i.flat[0]) if c.has_current else 1.0,
        dv=float(1 - c.alpha_v.flat[0]), vth=float(c.v_threshold.flat[0]), bias_mant=0.0,
    )


def custom_params(op: Op, lava_shape: Shape, order: np.ndarray, start: int) -> dict:
    """`ProgramNeuron` arguments: the Program's own coefficients, permuted into Lava's layout."""
    c: NeuronCoefficients = op.params
    permuted = {f: to_lava(getattr(c, f), op.out_shape, lava_shape, order) for f in _ARRAY_FIELDS
                if getattr(c, f) is not None}
    return dict(shape=tuple(lava_shape), coeffs=dataclasses.replace(c, **permuted), start=start, biases=(),
                v_init=permuted["v_init"])


# --- Fixed point: the integers of `ir.quantise` (NeuronInts), as the simulator's loihi mode runs them.


def stock_lif_fixed_obstacle(op: Op, q: NeuronInts, qprog: QuantisedProgram) -> str | None:
    """Why `op` cannot run as Lava's bit-accurate stock LIF, or None when it can."""
    if q.vth is None:
        return "non-spiking readout"
    if q.reset != "zero" or q.v_reset is not None:
        return f"reset to {'v - threshold' if q.reset == 'subtract' else 'v_reset'}"
    if q.delay_input:
        return "voltage integrates last step's current"
    if firing_obstacle(q.compare, q.spikes_per_step):
        return firing_obstacle(q.compare, q.spikes_per_step)
    if not all(_uniform(np.asarray(a)) for a in (q.du, q.dv, q.vth)):
        return "per-neuron time constants or thresholds"
    if np.max(q.dv) > DECAY_MAX:  # a Threshold's: v forgets all, past Lava's 12-bit dv
        return "no voltage memory (dv = 4096)"
    for src in op.sources:
        if src.name in qprog.synapses and qprog.synapses[src.name].bias is not None:
            return f"'{src.name}' has a bias that Lava's connection processes cannot add"
    return None


def _lava_ints(values, op: Op, lava_shape: Shape, order: np.ndarray) -> np.ndarray:
    return to_lava(np.asarray(values, dtype=np.int64), op.out_shape, lava_shape, order)


def stock_lif_fixed_params(op: Op, q: NeuronInts, lava_shape: Shape, order: np.ndarray) -> dict:
    return dict(
        shape=tuple(lava_shape), du=int(np.asarray(q.du).flat[0]), dv=int(np.asarray(q.dv).flat[0]),
        vth=int(np.asarray(q.vth).flat[0]), bias_mant=_lava_ints(q.bias_mant, op, lava_shape, order),
        bias_exp=_lava_ints(q.bias_exp, op, lava_shape, order), v=_lava_ints(q.v_init, op, lava_shape, order),
    )


def custom_fixed_params(op: Op, q: NeuronInts, lava_shape: Shape, order: np.ndarray) -> dict:
    """`ProgramNeuron` arguments in fixed point: the quantised integers, permuted into Lava's layout.

    coeffs is a dict of the `NeuronInts` fields, not the dataclass, as the plan's job file carries
    only plain data and its own few classes; the model rebuilds the `NeuronInts` from it."""
    ints = {f.name: getattr(q, f.name) for f in dataclasses.fields(q)}
    for name in ("du", "dv", "bias_mant", "bias_exp", "vth", "v_init", "v_reset"):
        if ints[name] is not None:  # vth is None for a non-spiking population, v_reset when it is 0
            ints[name] = _lava_ints(ints[name], op, lava_shape, order)
    return dict(shape=tuple(lava_shape), coeffs=ints, start=0, biases=(), v_init=ints["v_init"])


# --- NIR's Threshold (Role.THRESHOLD): s = x > level, remembering nothing. Lava has no such process,
# so it runs as a neuron whose potential is this step's input alone. Float: alpha_v = 0, gain_v = 1,
# so v = x exactly and the compare is the simulator's (a stock LIF with du = dv = 1 where that
# computes the same). Fixed point: no decay memory (u's factor 4096 - du - 1 and v's 4096 - dv are
# 0), so v = a_in << 6 and v > level << 6 is the simulator's a_in > level, as long as a_in << 6 fits
# the 24-bit registers, which is checked from the weights (else refused, naming the node).

def thresholds_as_neurons(program: Program, qprog: QuantisedProgram | None, binary_input: bool
                          ) -> tuple[Program, QuantisedProgram | None]:
    """The Program (and its integers) with every Threshold op given a neuron's coefficients."""
    ops = {op.name: op for op in program.ops}
    levels = {name: op.params.threshold for name, op in ops.items() if op.primitive.role is Role.THRESHOLD}
    if not levels:
        return program, qprog
    for name, level in levels.items():
        zeros = np.zeros(ops[name].out_shape)
        ops[name] = dataclasses.replace(ops[name], params=NeuronCoefficients(
            kind=ops[name].kind, alpha_v=zeros, gain_v=zeros + 1, bias_v=zeros, v_init=zeros,
            v_threshold=np.broadcast_to(level, zeros.shape).copy(), v_reset=zeros))
    program = dataclasses.replace(program, ops=tuple(ops[op.name] for op in program.ops))
    if qprog is None:
        return program, None
    kinds = program.event_kinds({program.inputs[0]: "binary" if binary_input else "graded"}, pools_count=False)
    ints = {}
    for name in levels:
        _check_threshold_input(program, qprog, name, kinds)
        ints[name] = NeuronInts(du=DECAY_UNITY - U_DECAY_OFFSET, dv=DECAY_UNITY, bias_mant=0, bias_exp=0,
                                vth=qprog.thresholds[name], v_init=0, v_reset=None, reset="zero", compare=">",
                                spikes_per_step="one", delay_input=False, has_current=False, scale=1.0)
    return program, dataclasses.replace(qprog, program=program, neurons={**qprog.neurons, **ints})


def _check_threshold_input(program: Program, qprog: QuantisedProgram, name: str, kinds: dict[str, str]) -> None:
    """Refuse a Threshold whose a_in could leave +-2^17 (a_in << 6 past 24 bits), from its synapse's
    integers and binary input (`kinds`: what each op emits); one with no synapse before it is refused
    by the lowering itself."""
    source = program.op(program.op(name).sources[0].name)
    while source.primitive.passes_values and source.sources:
        source = program.op(source.sources[0].name)
    if not source.primitive.is_synapse:
        return
    limit = 1 << (V_BITS - ACT_SHIFT - 1)
    if any(kinds[s.name] != "binary" for s in source.sources):
        raise UnsupportedError(f"in loihi mode a Threshold needs spikes into '{source.name}', so that its "
                               f"input is known to stay within +-2^{V_BITS - ACT_SHIFT - 1} (Loihi's 24-bit v)",
                               node=name)
    q = qprog.synapses[source.name]
    weights = np.abs(q.weight).reshape(len(q.weight), -1)
    per_output = weights.max(axis=1) if source.primitive.is_elementwise else weights.sum(axis=1)
    bound = int(per_output.max(initial=0)) * 2 ** q.weight_exp
    bound += 0 if q.bias is None else int(np.abs(q.bias).max())
    if bound >= limit:
        raise UnsupportedError(f"in loihi mode its input can reach {bound:g}, past the +-{limit} that Loihi's "
                               f"24-bit v holds once shifted 6 bits (the simulator compares it unbounded)",
                               node=name)
