"""Operation counts of one Program op, as a pure function of the op and the events it received.

`count_op(op, inputs, outputs)` takes the op's (fan-in summed) input and its output with any
leading dimensions, e.g. (T, B) or (B,), and returns one int64 array of those leading dimensions
per metric in `spikestack.ir.run.METRICS`. The simulator calls it step by step; the Lava backend
calls it on recorded spikes. Conventions (docs/architecture.md, "Run and Counts"):

- events: in an array of spike counts a value k is k spikes (k spikes cost k: a SumPool output of
  3 is 3 events); in a graded array (currents, voltages, analog data) each non-zero value is one
  event. See `OpCounter` for how the kind of an array is given or inferred.
- synaptic_events (Sinabs synops): events x structural fan-out, zero weights included. The
  fan-out of an input element is the number of output elements its kernel reaches given the
  stride, padding and dilation; pools count as depthwise convolutions with a constant kernel,
  Scale as one synapse per element.
- effective_acs / effective_macs (NeuroBench): non-zero weights reached by a non-zero input;
  ACs for a sample-step whose input is binary (all 0 or 1), MACs otherwise. Biases are not ops.
- dense_macs (NeuroBench Dense): every structural synapse, as if every input were non-zero;
  padding contributes nothing, as in NeuroBench (it multiplies an all-ones input).
- neuron_updates: every neuron of a neuron op, every step; active_neuron_updates: the neurons
  that received non-zero input or spiked in that step.
"""

from __future__ import annotations

import numpy as np

from spikestack.errors import OptionsError
from spikestack.ir.primitives import ConvSynapse, DenseSynapse, window_taps
from spikestack.ir.program import EVENT_KINDS, Op
from spikestack.ir.run import METRICS

SCAN_SLICE = 1 << 22  # values per slice when scanning an input for its kind


def _tap_masks(size: int, out: int, kernel: int, stride: int, pad: int, dilation: int) -> np.ndarray:
    """(kernel, size) 0/1: whether kernel tap k connects input position h to some output."""
    masks = np.zeros((kernel, size), dtype=np.int64)
    _, taps, inputs = window_taps(size, out, kernel, stride, pad, dilation)
    masks[taps, inputs] = 1
    return masks


def _conv_fan_out(weight_nonzero: np.ndarray, groups: int, in_shape, stride, padding, dilation,
                  out_spatial) -> tuple[np.ndarray, np.ndarray]:
    """Structural and non-zero fan-out of every input element of a convolution.

    weight_nonzero: (C_out, C_in/groups, *kernel) 0/1. Per input channel c and tap, count the
    output channels of c's group with a non-zero weight there; an input position receives the
    taps that land it on an output, which factorises over the spatial axes.
    """
    c_out, c_in_g = weight_nonzero.shape[:2]
    kernel = weight_nonzero.shape[2:]
    per_group = weight_nonzero.reshape(groups, c_out // groups, c_in_g, *kernel).sum(axis=1)
    nonzero_taps = per_group.reshape(groups * c_in_g, *kernel)  # (C_in, *kernel)
    all_taps = np.full_like(nonzero_taps, c_out // groups)
    masks = [_tap_masks(in_shape[1 + a], out_spatial[a], kernel[a], stride[a], padding[a], dilation[a])
             for a in range(len(kernel))]
    if len(kernel) == 1:
        return tuple(np.einsum("ck,kh->ch", taps, masks[0]) for taps in (all_taps, nonzero_taps))
    return tuple(np.einsum("ckl,kh,lw->chw", taps, masks[0], masks[1]) for taps in (all_taps, nonzero_taps))


def synapse_fan_out(op: Op) -> tuple[np.ndarray, np.ndarray]:
    """(structural, non-zero-weight) fan-out of each input element of a synapse op, shaped like
    op.in_shape."""
    syn, shape = op.synapse, op.in_shape
    if isinstance(syn, DenseSynapse):
        nonzero = np.count_nonzero(syn.weight, axis=0)
        return np.broadcast_to(np.full_like(nonzero, op.out_shape[-1]), shape), np.broadcast_to(nonzero, shape)
    if not isinstance(syn, ConvSynapse):  # elementwise: one synapse per element
        return np.ones(shape, dtype=np.int64), (syn.weight != 0).astype(np.int64)
    weight = (syn.weight != 0).astype(np.int64)
    return _conv_fan_out(weight, syn.groups, shape, syn.stride, syn.padding, syn.dilation, op.out_shape[1:])


def infer_kind(x: np.ndarray) -> str:
    """What an array of unknown provenance holds: spike counts when every value is a
    non-negative integer (0/1 spikes included), graded values otherwise. Scans in slices, so a
    large input needs no temporary of its own size."""
    x = np.asarray(x)
    if x.dtype == bool:
        return "binary"
    if np.issubdtype(x.dtype, np.integer):
        return "counts" if x.size == 0 or x.min() >= 0 else "graded"
    flat = x.reshape(-1)
    for start in range(0, flat.size, SCAN_SLICE):
        part = flat[start:start + SCAN_SLICE]
        if not ((part >= 0) & (part == np.floor(part))).all():
            return "graded"
    return "counts"


def _events(x: np.ndarray, kind: str) -> np.ndarray:
    """Events per leading index of x (..., n): the spikes of a count array, else its non-zeros."""
    if kind == "graded":
        return np.count_nonzero(x, axis=-1).astype(np.int64)
    if x.dtype.kind in "biu":
        return x.sum(axis=-1, dtype=np.int64)
    top = 1.0 if kind == "binary" else float(x.max(initial=0))
    exact = np.float32 if x.shape[-1] * top < 2**24 else np.float64  # float32 sums are exact below 2^24
    return np.rint(x.astype(exact, copy=False).sum(axis=-1)).astype(np.int64)


class OpCounter:
    """`count_op` for one op, with its fan-out computed once (the simulator keeps one per op).

    Callers that know what an array holds say so with `input_kind` / `output_kind`: "binary"
    (0/1 spikes: skips the scan that tells ACs from MACs), "counts" (spike counts: k spikes are
    k events) or "graded" (currents, voltages, analog data: one event per non-zero value). By
    default the kind is inferred per array with `infer_kind`, which cannot tell an integer
    current from a spike count: executors whose currents are integers (Loihi) must pass it.
    """

    def __init__(self, op: Op):
        self.op = op
        self.weighted = op.primitive.is_synapse
        columns = [np.ones(int(np.prod(op.in_shape)))]  # per input element: spikes_in, then
        if self.weighted:  # synaptic events (structural fan-out) and effective ops (non-zero fan-out)
            fan_out, nonzero = synapse_fan_out(op)
            columns += [fan_out.reshape(-1), nonzero.reshape(-1)]
            self.dense = int(fan_out.sum())
        self.columns = [c.astype(np.float64) for c in columns]
        self.size = int(np.prod(op.out_shape))

    def _sums(self, x: np.ndarray, which: range, top: float) -> list[np.ndarray]:
        """x (..., n) . column for each column in `which`, exactly: in float32 while every sum
        stays below 2^24, else float64 (exact below 2^53). One matrix-vector product per column
        (BLAS gemv reads x at memory speed, unlike a gemm with a few columns); a constant column
        (an Affine's fan-out) is the plain sum times that constant."""
        big = top * max(float(self.columns[k].sum()) for k in which) >= 2**24
        floats = None
        total = None
        out = []
        for k in which:
            column = self.columns[k]
            if column.size and np.all(column == column[0]):
                if total is None:  # integers sum exactly as they are; floats within the bound
                    exact = np.int64 if x.dtype.kind in "biu" else np.float64 if big else None
                    total = x.sum(axis=-1, dtype=exact)
                out.append(np.rint(total * column[0]).astype(np.int64))
            else:
                floats = x.astype(np.float64 if big else np.float32, copy=False) if floats is None else floats
                out.append(np.rint(floats @ column.astype(floats.dtype)).astype(np.int64))
        return out

    def __call__(self, inputs, outputs, *, input_kind: str | None = None,
                 output_kind: str | None = None) -> dict[str, np.ndarray]:
        op = self.op
        for kind in (input_kind, output_kind):
            if kind is not None and kind not in EVENT_KINDS:
                raise OptionsError(f"array kind must be one of {', '.join(EVENT_KINDS)}; got {kind!r}")
        outputs = np.asarray(outputs)
        if op.primitive.is_input or inputs is None:
            inputs, input_kind = outputs, input_kind or output_kind
        lead = outputs.shape[: outputs.ndim - len(op.out_shape)]
        flat_in = np.asarray(inputs).reshape(*lead, -1)
        flat_out = outputs.reshape(*lead, -1)
        input_kind = input_kind or infer_kind(flat_in)
        output_kind = output_kind or infer_kind(flat_out)
        result = {m: np.zeros(lead, dtype=np.int64) for m in METRICS}
        result["spikes_out"] = _events(flat_out, output_kind)
        if op.primitive.is_input:  # what arrives is what it emits
            result["spikes_in"] = result["spikes_out"]
            return result
        n = len(self.columns)
        nonzero_in = flat_in if input_kind == "binary" else flat_in != 0
        if input_kind == "counts":  # k spikes are k events but reach the same non-zero weights
            sums = self._sums(flat_in, range(min(n, 2)), float(flat_in.max(initial=0)))
            sums += self._sums(nonzero_in, range(2, n), 1.0) if self.weighted else []
        else:  # binary spikes, or graded values counted once each
            sums = self._sums(nonzero_in, range(n), 1.0)
        result["spikes_in"] = sums[0]
        if self.weighted:
            if input_kind == "binary":
                binary = True
            elif input_kind == "counts":
                binary = flat_in.max(axis=-1, initial=0) <= 1
            else:
                binary = ((flat_in == 0) | (flat_in == 1)).all(axis=-1)
            result["synaptic_events"] = sums[1]
            result["effective_acs"] = np.where(binary, sums[2], 0)
            result["effective_macs"] = np.where(binary, 0, sums[2])
            result["dense_macs"] = np.full(lead, self.dense, dtype=np.int64)
        elif op.is_neuron:
            result["neuron_updates"] = np.full(lead, self.size, dtype=np.int64)
            received = nonzero_in if nonzero_in.dtype == bool else nonzero_in != 0
            active = received | (flat_out != 0) if op.params.spiking else received
            result["active_neuron_updates"] = np.count_nonzero(active, axis=-1).astype(np.int64)
        return result


def count_op(op: Op, inputs, outputs, *, input_kind: str | None = None,
             output_kind: str | None = None) -> dict[str, np.ndarray]:
    """Counts of one op: `inputs` is what it received (summed over its fan-in; ignored for an
    Input op, whose data is its output), `outputs` what it emitted, both with the same leading
    dimensions. Returns {metric: int64 array of those leading dimensions} for every metric.
    The kinds ("binary", "counts", "graded") are inferred when not given (see `OpCounter`)."""
    return OpCounter(op)(inputs, outputs, input_kind=input_kind, output_kind=output_kind)
