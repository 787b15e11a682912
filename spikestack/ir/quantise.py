"""`quantise_program`: a float Program -> Loihi integers (`ir.fixed`'s formats), with a report.

Scales. Every op's output has a scale: integers per float unit. Spikes (Input, spiking neurons,
Threshold) have scale 1; Flatten, Delay and Output keep their input's. A neuron N gets one
scale s_N: Lava's v holds 2^6 s_N v_float, its u holds 2^6 s_N gain_v i, so a synapse op that
feeds N (through Flatten/Delay only) must deliver a_in = s_N g x with g = gain_v (times gain_i for
neurons with a current): g is folded into that op's weights (per row, or per channel for
convolutions and pools, which are depthwise convolutions with a constant kernel). A weighted op
that feeds no neuron keeps its weights exact where a power of two allows (sum pools: 1, 2x2
average pools: 1 at scale 4) and otherwise spends the full 8-bit mantissa.

Choice of s_N: the largest scale such that the threshold leaves `headroom_bits` of the 24-bit v
above it (so subtractive resets keep their residue and negative excursions are not clipped),
dense weights fit mantissa * 2^7, and convolution weights fit the mantissa at exponent 0 (Lava's
Conv ignores weight_exp). Non-spiking neurons take the scale at which the largest weight uses the
full mantissa at exponent 0. Synapse biases go into the neuron's bias when it has no current
(exact: u is this step's input), else they stay on the synapse op as an integer added to a_out.
The Program's `integer_scale` option pins s_N instead (values that already are integers).

Formats (the Program's `fixed_point` option). "loihi": Lava's Dense takes 8-bit mantissas (even
ones when signs are mixed: it truncates the lowest bit) and any exponent. "netx": what a lava-dl
netx file holds. netx gives the weights no exponent (it rescales the integers it reads to use
Lava's bits, exactly: netx/utils.py optimize_weight_bits), so every synapse has exponent 0 and
integer weights up to 254 (mixed signs, odd ones too) or 255; and every bias has exponent 6.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from spikestack.errors import OptionsError, UnsupportedError
from spikestack.ir import discretise, fixed
from spikestack.ir.fixed import NeuronInts  # defined in the leaf, whose neuron step reads it
from spikestack.ir.primitives import ConvSynapse, DenseSynapse
from spikestack.ir.program import Op, Program
from spikestack.ir.run import Run

DEFAULT_HEADROOM_BITS = 2  # v may reach +-4 thresholds before Loihi clips it


@dataclass(frozen=True)
class SynapseInts:
    """A weighted op in Loihi integers: a_out = shift(weight . x, weight_exp) (+ bias)."""

    weight: np.ndarray  # int64 mantissas in the NIR layout; pools: depthwise kernel (C, 1, kh, kw)
    weight_exp: int
    bias: np.ndarray | None  # int64 in a_out units, broadcast to out_shape; None if zero
    # Lava Dense's num_weight_bits: 8 truncates the lowest bit of mixed-sign mantissas; netx
    # rescales its integers so that none is dropped, which is 9 bits for mixed signs
    weight_bits: int = fixed.WEIGHT_BITS


@dataclass(frozen=True)
class QuantisedProgram:
    program: Program
    synapses: dict[str, SynapseInts]
    neurons: dict[str, NeuronInts]
    thresholds: dict[str, np.ndarray]  # Threshold ops: integer thresholds on their input


@dataclass
class QuantisationReport:
    """Relative error (norm of the error / norm of the scaled float value) per op and quantity."""

    errors: dict[str, dict[str, float]] = field(default_factory=dict)

    def worst(self) -> dict[str, float]:
        return {op: max(q.values(), default=0.0) for op, q in self.errors.items()}

    def __str__(self) -> str:
        return "\n".join(f"{op}: worst {max(q.values(), default=0.0):.3g} ("
                         + ", ".join(f"{k} {v:.3g}" for k, v in q.items()) + ")" for op, q in self.errors.items())


def _mantissa_max(w: np.ndarray, netx: bool = False) -> tuple[int, int]:
    """(largest mantissa Lava keeps, truncation step) for 8-bit weights of w's sign mode; a netx
    file's integers are rescaled into Lava's bits, so odd ones keep (netx/utils.py)."""
    step = 2 if fixed.sign_mode_of(w) == "mixed" else 1
    return (1 << fixed.WEIGHT_BITS) - step, 1 if netx else step


def _mantissas(target: np.ndarray, exp: int, netx: bool = False) -> np.ndarray:
    top, step = _mantissa_max(target, netx)
    return np.clip(np.rint(target / 2.0**exp / step) * step, -top, top).astype(np.int64)


class _Quantiser:
    def __init__(self, program: Program, headroom_bits: int):
        self.program, self.headroom = program, headroom_bits
        self.netx = program.options.fixed_point == "netx"
        self.pinned_scale = program.options.integer_scale
        self.ops = {op.name: op for op in program.ops}
        self.scales: dict[str, float] = {}
        self.visiting: set[str] = set()
        self.synapses: dict[str, SynapseInts] = {}
        self.neurons: dict[str, NeuronInts] = {}
        self.thresholds: dict[str, np.ndarray] = {}
        self.report = QuantisationReport()

    def _through(self, name: str, step) -> list[str]:
        """Follow Flatten/Delay from `name` along `step` (consumers or sources) to other ops."""
        found = []
        for nxt in step(name):
            what = self.ops[nxt].primitive
            found.extend(self._through(nxt, step) if what.passes_values and not what.is_output else [nxt])
        return found

    def bound_neuron(self, op: Op) -> Op | None:
        """The neuron a weighted op feeds, or None if it feeds no neuron."""
        ends = [self.ops[n] for n in self._through(op.name, self.program.consumers)]
        neurons = [e for e in ends if e.is_neuron]
        if neurons and (len(neurons) > 1 or len(ends) > 1):
            raise UnsupportedError("in loihi mode a synapse op feeds exactly one neuron op and nothing else",
                                   node=op.name)
        return neurons[0] if neurons else None

    def in_scale(self, op: Op) -> float:
        scales = {self.out_scale(self.ops[s.name]) for s in op.sources}
        if len(scales) > 1:
            raise UnsupportedError("in loihi mode the inputs summed here must share one integer scale", node=op.name)
        return scales.pop()

    def out_scale(self, op: Op) -> float | None:
        """Integers per float unit of op's output; None for a synapse op bound to a neuron (its
        scale is the neuron's, per element)."""
        if op.name not in self.scales:
            if op.name in self.visiting:
                raise UnsupportedError("loihi mode needs a spiking neuron in every loop", node=op.name)
            self.visiting.add(op.name)
            what = op.primitive
            if what.is_input or what.spiking:
                self.scales[op.name] = 1.0  # set first: recurrent synapses read it while N is quantised
                if what.is_neuron:
                    self._neuron(op)
                elif not what.is_input:  # a Threshold: an integer level on its input's scale
                    scale = self.in_scale(op)
                    self.thresholds[op.name] = np.floor(op.params.threshold * scale).astype(np.int64)
            elif what.passes_values:
                self.scales[op.name] = self.in_scale(op)
            elif op.is_neuron:
                self.scales[op.name] = (1 << fixed.ACT_SHIFT) * self._neuron(op)
            elif what.is_synapse:
                neuron = self.bound_neuron(op)
                if neuron is not None:
                    self.scales[op.name] = None
                    self.out_scale(neuron)
                else:
                    self.scales[op.name] = self._free_synapse(op)
            else:
                raise UnsupportedError(f"loihi mode cannot run '{op.kind}'", node=op.name)
        return self.scales[op.name]

    def _free_synapse(self, op: Op) -> float:
        """A weighted op feeding no neuron: exact at a power of two if possible, else full mantissa."""
        w, bias = _weights(op), _bias(op)
        top = _mantissa_max(w)[0]
        w_max = float(np.abs(w).max(initial=0.0))
        exact = [k for k in range(17) if np.all(w * 2.0**k == np.rint(w * 2.0**k)) and w_max * 2.0**k <= top]
        k = exact[0] if exact else int(np.floor(np.log2(top / w_max))) if w_max > 0 else 0
        scale = self.in_scale(op) * 2.0**k
        b_int = np.rint(bias * scale).astype(np.int64) if bias is not None else None
        self._store(op, w * 2.0**k, 0, b_int, bias, scale)
        return scale

    def _store(self, op: Op, target, exp, b_int, bias, scale) -> None:
        mant = _mantissas(target, exp, self.netx)
        bits = fixed.WEIGHT_BITS + (self.netx and fixed.sign_mode_of(mant) == "mixed")
        self.synapses[op.name] = SynapseInts(mant, int(exp), b_int, bits)
        errors = {"weight": discretise.relative_error(target, mant, 1.0, exp)}
        if b_int is not None:
            errors["bias"] = discretise.relative_error(bias, b_int, scale)
        self.report.errors[op.name] = errors

    def _neuron(self, op: Op) -> float:
        """Quantise neuron op N and the synapse ops that feed it; return s_N."""
        p = op.params
        if p.spiking and p.reset_timing != "immediate":
            raise UnsupportedError("loihi mode resets in the step that spikes: lower with reset_timing='immediate'",
                                   node=op.name)
        gain = p.gain_v * (p.gain_i if p.has_current else 1.0)
        bias_v = np.array(p.bias_v, dtype=np.float64)
        feeds = []  # (synapse op, weights with gain folded in, per scale 1 of the input, bias or None)
        for name in self._through(op.name, lambda n: [s.name for s in self.ops[n].sources]):
            syn = self.ops[name]
            if not syn.primitive.is_synapse:
                raise UnsupportedError(f"loihi mode needs a synapse op between '{name}' and this neuron", node=op.name)
            g = gain.reshape(syn.out_shape)
            w = _fold_gain(syn, _weights(syn), g) / self.in_scale(syn)
            bias = _bias(syn)
            if bias is not None and not p.has_current:  # exact: u is this step's input only
                bias_v = bias_v + (p.gain_v.reshape(syn.out_shape) * bias).reshape(op.out_shape)
                bias = None
            feeds.append((syn, w, None if bias is None else bias * g))
        scale = self._neuron_scale(op.name, p, feeds) if self.pinned_scale is None else self.pinned_scale
        for syn, w, bias in feeds:
            target = w * scale
            top = _mantissa_max(target, self.netx)[0]
            w_max = float(np.abs(target).max(initial=0.0))
            exp = 0  # convolutions: Lava's Conv ignores the exponent; netx files have none
            if self._has_exponent(syn) and w_max > 0:  # the smallest exponent whose mantissa fits
                exp = int(np.clip(np.ceil(np.log2(w_max / top)), fixed.WEIGHT_EXP_MIN, fixed.WEIGHT_EXP_MAX))
            if np.rint(w_max / 2.0**exp) > top:  # only a pinned scale gets here: clipping would be silent
                raise OptionsError(f"weights up to {w_max:.6g} at integer scale {scale:.6g} exceed the largest "
                                   f"{'netx ' if self.netx else ''}weight {top}", node=syn.name)
            b_int = np.rint(bias * scale).astype(np.int64) if bias is not None else None
            self._store(syn, target, exp, b_int, bias, scale)
        v_scale = scale * (1 << fixed.ACT_SHIFT)
        try:
            mant, bexp = discretise.quantise_bias(bias_v, scale, fixed.NETX_BIAS_EXP if self.netx else None)
            vth = discretise.quantise_threshold(p.v_threshold, scale) if p.spiking else None
        except OptionsError as exc:  # name the node: the leaf module knows only numbers
            raise OptionsError(str(exc), node=op.name) from None
        if p.spiking and p.spikes_per_step == "many" and np.any(vth < 1):
            raise OptionsError(f"spikes_per_step='many' needs integer thresholds >= 1; v_threshold "
                               f"{float(np.min(p.v_threshold)):.3g} x scale {scale:.3g} rounds to 0", node=op.name)
        resets = p.spiking and p.reset == "zero" and bool(np.any(p.v_reset != 0))
        v_reset = np.rint(p.v_reset * v_scale).astype(np.int64) if resets else None
        du = discretise.decay_to_int(1.0 - p.alpha_i if p.has_current else np.ones(op.out_shape), fixed.U_DECAY_OFFSET)
        dv = discretise.decay_to_int(1.0 - p.alpha_v)
        v_init = np.rint(p.v_init * v_scale).astype(np.int64)
        self.neurons[op.name] = NeuronInts(
            du=du, dv=dv, bias_mant=mant, bias_exp=bexp, vth=vth, v_init=v_init, v_reset=v_reset, reset=p.reset,
            compare=p.threshold, spikes_per_step=p.spikes_per_step,
            delay_input=p.has_current and p.cuba_order == "voltage_first", has_current=p.has_current, scale=v_scale)
        errors = {"dv": discretise.relative_error(1.0 - p.alpha_v, dv, fixed.DECAY_UNITY)}
        if p.has_current:
            errors["du"] = discretise.relative_error(1.0 - p.alpha_i, du + fixed.U_DECAY_OFFSET, fixed.DECAY_UNITY)
        if vth is not None:
            errors["v_threshold"] = discretise.relative_error(p.v_threshold, vth, scale)
        if np.any(bias_v != 0):
            errors["bias"] = discretise.relative_error(bias_v, mant, v_scale, bexp)
        if np.any(p.v_init != 0):
            errors["v_init"] = discretise.relative_error(p.v_init, v_init, v_scale)
        if v_reset is not None:
            errors["v_reset"] = discretise.relative_error(p.v_reset, v_reset, v_scale)
        self.report.errors[op.name] = errors
        return scale

    def _neuron_scale(self, name: str, p, feeds) -> float:
        """The largest s_N that every constraint of the module docstring allows."""
        limits = []
        if p.spiking and np.max(p.v_threshold) > 0:
            headroom = self.headroom.get(name, DEFAULT_HEADROOM_BITS) if isinstance(self.headroom, Mapping) else self.headroom
            limits.append((fixed.VTH_MAX >> headroom) / float(np.max(p.v_threshold)))
        for syn, w, _ in feeds:
            w_max = float(np.abs(w).max(initial=0.0))
            if w_max > 0:
                top = _mantissa_max(w, self.netx)[0]
                shift = fixed.WEIGHT_EXP_MAX if self._has_exponent(syn) and p.spiking else 0
                limits.append(top * 2.0**shift / w_max)
        return min(limits) if limits else 1.0

    def _has_exponent(self, syn: Op) -> bool:
        """Whether the format gives this synapse a weight exponent (Lava's Dense; not Conv, not netx)."""
        return not (self.netx or syn.primitive.is_window)


def _fold_gain(op: Op, w: np.ndarray, g: np.ndarray) -> np.ndarray:
    """w * g with g (op's out_shape) per output row (dense), element (Scale) or channel (conv)."""
    syn = op.synapse
    if not isinstance(syn, (DenseSynapse, ConvSynapse)):
        return w * g
    dense = isinstance(syn, DenseSynapse)
    per_unit = g.reshape(-1, g.shape[-1]) if dense else g.reshape(g.shape[0], -1).T
    if not np.all(per_unit == per_unit[0]):
        what = "output feature" if dense else "output channel"
        raise UnsupportedError(f"loihi mode folds the neuron gains into the weights, so they must be equal per {what}",
                               node=op.name)
    return w * per_unit[0].reshape(-1, *([1] * (w.ndim - 1)))


def _weights(op: Op) -> np.ndarray:
    """Float weights of a synapse op in the layout its integer kernel uses (pools: a depthwise
    kernel of ones, or of 1/area for an average)."""
    syn = op.synapse
    return syn.weights if isinstance(syn, ConvSynapse) else syn.weight


def _bias(op: Op) -> np.ndarray | None:
    bias = getattr(op.synapse, "bias", None)
    if bias is None or not np.any(bias != 0):
        return None
    if isinstance(op.synapse, DenseSynapse):
        return np.broadcast_to(bias, op.out_shape).copy()
    per_channel = bias.reshape(-1, *([1] * (len(op.out_shape) - 1)))
    return np.broadcast_to(per_channel, op.out_shape).copy()


def headroom_from_run(program: Program, run: Run) -> dict[str, int]:
    """Headroom bits per spiking neuron op from a float run that recorded its `v`: enough for the
    largest |v| seen (in thresholds) plus one bit, at least the default. IF networks with
    subtractive reset drift far below zero (the digits demo's output layer to -170 thresholds);
    with the default 2 bits Loihi's v would clip at -4 thresholds and change every decision."""
    bits = {}
    for op in program.neuron_ops:
        rec = run.recordings.get(op.name, {})
        if op.params.spiking and "v" in rec:
            span = float(np.abs(rec["v"]).max(initial=0.0)) / float(np.max(op.params.v_threshold))
            bits[op.name] = max(DEFAULT_HEADROOM_BITS, int(np.ceil(np.log2(span + 1.0))) + 1)
    return bits


def quantise_program(program: Program, headroom_bits: int | Mapping[str, int] = DEFAULT_HEADROOM_BITS
                     ) -> tuple[QuantisedProgram, QuantisationReport]:
    """Map a float Program's parameters to Loihi integers; report the relative error per op.

    headroom_bits: bits of v's range kept above each threshold, for all ops or per op name
    (`headroom_from_run` derives them from a float run); more range, less precision.

    Raises UnsupportedError naming the node for what Loihi's integer pipeline cannot express
    (see the module docstring); the float Program itself is not modified.
    """
    q = _Quantiser(program, headroom_bits)
    for op in program.ops:
        q.out_scale(op)
    return QuantisedProgram(program, q.synapses, q.neurons, q.thresholds), q.report
