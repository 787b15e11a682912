"""One runner per Program op for the compiled engine: its arrays, prepared once, and the kernel call.

Every value travels as a C-ordered (S, B, n) array: S steps of a block, B samples, the op's shape
flattened (a reshape is then free). `run(x, out, counts, t0)` computes a block: x is the op's
fan-in summed input (None for an Input op, which gets its data as x), out and counts (S, B, M)
are written in place. Float mode computes in the run's dtype; Loihi mode in int64, with the
integers of `ir.quantise` (the same the reference engine and our Lava models use).
"""

from __future__ import annotations

import numpy as np

from spikestack.errors import UnsupportedError
from spikestack.ir import fixed
from spikestack.ir.counts import synapse_fan_out
from spikestack.ir.primitives import ConvSynapse, DenseSynapse, ElementwiseSynapse, Role
from spikestack.ir.program import Op
from spikestack.ir.quantise import QuantisedProgram
from spikestack.simulators.compiled import convolution, events, neurons, synapses
from spikestack.simulators.compiled.scalars import FIXED_FLAGS, FLOAT_FLAGS, options_of
from spikestack.simulators.compiled.threads import over_samples

# A dense layer whose input block has more than this fraction of non-zero values runs as one BLAS
# product instead of the event-driven row gather; measured on W (bench/sim_scaling.py, BENCHMARKS.md).
DENSE_ABOVE = 0.25
ACTIVITY_PROBE = 1 << 11
FLOAT_COEFFICIENTS = ("alpha_v", "gain_v", "bias_v", "alpha_i", "gain_i", "v_threshold", "v_reset")
FIXED_INTS = ("du", "dv", "bias", "threshold", "reset_offset")  # NeuronInts' attributes (scalars.FixedNeuron)


def _busy(x: np.ndarray) -> bool:
    """Whether more than DENSE_ABOVE of the block's values are non-zero, judged on an even sample of
    at most ACTIVITY_PROBE of them (counting them all cost more than the sparse layer it decides on)."""
    flat = x.reshape(-1)
    probe = flat[:: max(1, flat.size // ACTIVITY_PROBE)]
    return np.count_nonzero(probe) > DENSE_ABOVE * probe.size


def width(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _per_element(value, shape, dtype) -> np.ndarray:
    value = np.zeros(()) if value is None else np.asarray(value)
    return np.ascontiguousarray(np.broadcast_to(value, shape), dtype=dtype).reshape(-1)


class Runner:
    """An op that moves values: Input, Output, reshapes (and the base of the others)."""

    def __init__(self, op: Op, dtype, kinds: tuple[int, int]):
        self.op, self.dtype, self.kinds = op, dtype, np.array(kinds, dtype=np.int64)
        self.n_in, self.n_out = width(op.in_shape), width(op.out_shape)

    def start(self, batch: int) -> None:
        """Fresh state for a run of `batch` samples."""

    def run(self, x: np.ndarray, out: np.ndarray, counts: np.ndarray, t0: int) -> None:
        out[...] = x
        over_samples(events.count_passing, x.shape[1], x, out, self.kinds[0], self.kinds[1], counts)


class DelayRunner(Runner):
    def __init__(self, op: Op, dtype, kinds):
        super().__init__(op, dtype, kinds)
        self.steps = _per_element(op.params.steps, op.out_shape, np.int64)
        self.depth = int(self.steps.max(initial=0)) + 1

    def start(self, batch: int) -> None:
        self.ring = np.zeros((self.depth, batch, self.n_out), dtype=self.dtype)

    def run(self, x, out, counts, t0):
        over_samples(events.delay_steps, x.shape[1], x, self.ring, self.steps, t0, out)
        over_samples(events.count_passing, x.shape[1], x, out, self.kinds[0], self.kinds[1], counts)


class ThresholdRunner(Runner):
    def __init__(self, op: Op, dtype, kinds, level):
        super().__init__(op, dtype, kinds)
        self.level = _per_element(level, op.in_shape, dtype)

    def run(self, x, out, counts, t0):
        over_samples(synapses.threshold, x.shape[1], x, self.level, out, self.kinds, counts)


class SynapseRunner(Runner):
    """Dense, elementwise and sliding-window synapses; `loihi` selects Lava's arithmetic."""

    def __init__(self, op: Op, dtype, kinds, weight: np.ndarray, bias, weight_exp: int, loihi: bool):
        super().__init__(op, dtype, kinds)
        syn = op.synapse
        fan, nonzero = synapse_fan_out(op)
        self.fan, self.nonzero = (np.ascontiguousarray(a, dtype=np.int64).reshape(-1) for a in (fan, nonzero))
        self.dense_macs = int(fan.sum())
        self.weight_exp, self.loihi = int(weight_exp), loihi
        self.divisor = float(getattr(syn, "divisor", 1.0))
        if bias is not None and isinstance(syn, ConvSynapse) and not loihi:  # per channel -> per element
            bias = np.asarray(bias).reshape(-1, *(1,) * (len(op.out_shape) - 1))
        # one value per output element, or none: adding zeros would only turn -0.0 into 0.0
        has_bias = bias is not None and np.any(np.asarray(bias) != 0)
        self.bias = _per_element(bias, op.out_shape, dtype) if has_bias else np.zeros(0, dtype)
        if isinstance(syn, DenseSynapse):
            self.kind = "dense"  # Loihi's weights are 8-bit mantissas: int32 rows (synapses.dense_events)
            self.weight = np.ascontiguousarray(np.asarray(weight).T, dtype=np.int32 if loihi else dtype)
            # Loihi's dense path: the largest sum of |weights| into one output, and the weights as floats
            self.row_l1 = float(np.abs(self.weight).sum(axis=0).max(initial=0))
            self._float_weights: dict = {}
        elif isinstance(syn, ElementwiseSynapse):
            self.kind = "elementwise"
            self.weight = _per_element(weight, op.in_shape, dtype)
        else:
            self.kind = "conv"
            self._conv_geometry(syn, weight, dtype)

    def _product(self, x: np.ndarray, out: np.ndarray) -> bool:
        """out = x @ W (+ bias) as one dense matrix product (BLAS) over the block: faster than the row
        gather once many inputs are active. Loihi: in the narrowest float whose mantissa holds
        every partial sum (so the integers are exact), then Lava's shift and wraps; False (the
        caller gathers instead) where even float64 could not be exact."""
        n_in, n_out = self.weight.shape
        flat = x.reshape(-1, n_in)
        if not self.loihi:
            np.matmul(flat.astype(self.dtype, copy=False), self.weight, out=out.reshape(-1, n_out))
            if self.bias.shape[0]:
                out += self.bias  # one value per output element: (R * n_out,) along out's last axis
            return True
        bound = float(np.abs(flat).max(initial=0)) * self.row_l1
        exact = np.float32 if bound < 2**24 else np.float64 if bound < 2**53 else None
        if exact is None:
            return False
        if exact not in self._float_weights:
            self._float_weights[exact] = self.weight.astype(exact)
        acc = flat.astype(exact) @ self._float_weights[exact]
        over_samples(synapses.lava_outputs, x.shape[1], acc.reshape(out.shape), self.weight_exp, self.bias, out)
        return True

    def _conv_geometry(self, syn: ConvSynapse, weight, dtype) -> None:
        self.weight = convolution.conv_weight_layout(np.asarray(weight), syn.groups, dtype)
        in_shape, out_shape = self.op.in_shape, self.op.out_shape
        self.channels = (int(in_shape[0]), int(out_shape[0]))
        self.out_size = width(out_shape[1:])
        self.taps, self.tap_start = convolution.tap_table(in_shape[1:], out_shape[1:], syn.kernel, syn.stride,
                                                          syn.padding, syn.dilation)

    def run(self, x, out, counts, t0):
        common = (self.fan, self.nonzero, self.kinds, self.dense_macs, counts)
        if self.kind == "dense" and _busy(x) and self._product(x, out):
            over_samples(synapses.count_synapse, x.shape[1], x, out, *common)
            return
        if self.kind == "dense":
            rows = x.shape[2] // self.weight.shape[0]
            x4 = x.reshape(x.shape[0], x.shape[1], rows, self.weight.shape[0])
            o4 = out.reshape(out.shape[0], out.shape[1], rows, self.weight.shape[1])
            over_samples(synapses.dense_events, x.shape[1], x4, self.weight, self.bias, self.weight_exp, o4, *common)
        elif self.kind == "elementwise":
            over_samples(synapses.elementwise, x.shape[1], x, self.weight, self.bias, self.weight_exp, out, *common)
        else:
            over_samples(convolution.conv_events, x.shape[1], x, self.weight, self.taps, self.tap_start,
                         *self.channels, self.out_size, self.bias, self.divisor, self.weight_exp, out, *common)


class NeuronRunner(Runner):
    def __init__(self, op: Op, dtype, kinds, ints=None):
        super().__init__(op, dtype, kinds)
        self.ints = ints
        p = op.params if ints is None else ints
        names = FLOAT_COEFFICIENTS if ints is None else FIXED_INTS
        self.table = np.stack([_per_element(getattr(p, f), op.out_shape, dtype) for f in names])
        if ints is None:
            self.kernel = neurons.float_kernel(options_of(p, FLOAT_FLAGS))
        else:
            self.kernel = neurons.fixed_kernel(options_of(p, FIXED_FLAGS))
        self.v_init = _per_element(p.v_init, op.out_shape, dtype)
        self.rec = None  # (S, 3, B, n) when recording (set by the engine per block)
        self.no_rec = np.zeros((1, 3, 1, 1), dtype=dtype)  # what the kernel gets, unread, when not recording

    def start(self, batch: int) -> None:
        zeros = [np.zeros((batch, self.n_out), dtype=self.dtype) for _ in range(4)]
        self.state = [zeros[0], zeros[1] + self.v_init, zeros[2], zeros[3]]  # i or u, v, s, pending

    def run(self, x, out, counts, t0):
        recording = self.rec is not None
        rec = self.rec if recording else self.no_rec
        i, v, s, pending = self.state
        spiking = bool(self.op.params.spiking)
        state = (i, v, s) if self.ints is None else (i, v, s, pending)
        over_samples(self.kernel, x.shape[1], x, *state, self.table, out, rec, recording, counts, self.kinds, spiking)


def make_runner(op: Op, dtype, kinds: tuple[int, int], qprog: QuantisedProgram | None) -> Runner:
    """The runner of `op` in float mode (qprog None) or Loihi mode; UnsupportedError naming the node
    for an op neither engine has a kernel for."""
    role, loihi = op.primitive.role, qprog is not None
    if op.is_neuron:
        return NeuronRunner(op, dtype, kinds, qprog.neurons[op.name] if loihi else None)
    if role is Role.DELAY:
        return DelayRunner(op, dtype, kinds)
    if role is Role.THRESHOLD:
        return ThresholdRunner(op, dtype, kinds, qprog.thresholds[op.name] if loihi else op.params.threshold)
    if role in (Role.INPUT, Role.OUTPUT, Role.RESHAPE):
        return Runner(op, dtype, kinds)
    syn = op.synapse
    if not isinstance(syn, (DenseSynapse, ElementwiseSynapse, ConvSynapse)):
        raise UnsupportedError(f"the compiled engine has no kernel for '{op.kind}'", node=op.name)
    if loihi:
        q = qprog.synapses[op.name]
        weight = q.weight if isinstance(syn, ConvSynapse) else fixed.effective_weights(q.weight, num_weight_bits=q.weight_bits)
        return SynapseRunner(op, dtype, kinds, weight, q.bias, q.weight_exp, True)
    return SynapseRunner(op, dtype, kinds, syn.weight, getattr(syn, "bias", None), 0, False)
