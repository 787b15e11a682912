"""Synapse operators of a Program -> Lava connection processes (Dense, Sparse, DelayDense, Conv).

One builder per normalised synapse type (`ir.primitives`), looked up in `SYNAPSES` by the type of
`op.synapse`: a `DenseSynapse` (Affine, Linear) is a Dense, an `ElementwiseSynapse` (Scale) a
diagonal Dense, a `ConvSynapse` (convolutions, and pools as depthwise convolutions with a kernel of
ones) a Conv. A builder gets the Program op, the Lava-side layout of its input, and in loihi mode
the op's integers from `ir.quantise` (`SynapseInts`: the simulator's loihi mode runs the same ones);
it returns the process kind and constructor arguments in Lava's layout, and the layout of what the
process sends. Float weights are the normalised ones, permuted, times `fold` (the gain of a stock
LIF, neurons.py); fixed-point weights are the quantised mantissas, whose gains the quantiser already
folded. Pure numpy, no Lava.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from spikestack.backends.lava.layout import conv_kernel_to_lava, lava_layout, to_lava, xy
from spikestack.errors import UnsupportedError
from spikestack.ir.primitives import ConvSynapse, DenseSynapse, ElementwiseSynapse
from spikestack.ir.program import Op
from spikestack.ir.quantise import SynapseInts
from spikestack.ir.shapes import Shape

GRADED_BITS = 24  # num_message_bits of graded messages (pooled counts, currents): Loihi 2's widest
SPARSE_DENSITY = 0.1  # a weight matrix with at most this fraction of nonzeros becomes a Lava Sparse


@dataclass(frozen=True)
class SynapseSpec:
    kind: str  # "dense" | "sparse" | "conv"
    params: dict  # constructor arguments of the Lava process
    shape: Shape  # Lava shape of what it sends
    order: np.ndarray  # NIR flat index of each element it sends
    bias: np.ndarray | None  # NIR bias in Lava layout: Lava synapses have none, the consumer adds it


def _connection(w: np.ndarray, graded: bool, fold, ints: SynapseInts | None) -> tuple[str, dict]:
    """A (n_out, n_in) matrix in Lava order -> Dense, or Sparse when mostly zero."""
    if fold is not None:
        w = w * np.asarray(fold, dtype=np.float64).reshape(-1, 1)
    params = dict(weights=w, num_message_bits=GRADED_BITS if graded else 0)
    if ints is not None:
        params.update(weights=w.astype(np.int32), weight_exp=ints.weight_exp, num_weight_bits=ints.weight_bits)
    return ("sparse" if np.count_nonzero(w) <= SPARSE_DENSITY * w.size else "dense"), params


def _lava_bias(op: Op, ints: SynapseInts | None, out_shape: Shape, out_order: np.ndarray) -> np.ndarray | None:
    if ints is not None:
        bias = ints.bias
    else:
        bias = getattr(op.synapse, "bias", None)  # an ElementwiseSynapse has none
        if bias is not None and isinstance(op.synapse, ConvSynapse):  # one per output channel
            bias = bias.reshape((-1,) + (1,) * (len(op.out_shape) - 1))
    if bias is None or not np.any(np.asarray(bias)):
        return None
    return to_lava(np.asarray(bias, dtype=np.int64 if ints is not None else np.float64), op.out_shape, out_shape, out_order)


def _dense(op: Op, in_shape: Shape, order: np.ndarray, graded: bool, fold, ints) -> SynapseSpec:
    if len(op.in_shape) != 1:
        raise UnsupportedError(f"{op.kind} over a {len(op.in_shape)}-D input: Lava's Dense takes vectors; add a Flatten", node=op.name)
    weight = ints.weight if ints is not None else op.synapse.weight
    # Columns follow the Lava order of the input (a flattened (X, Y, C) image is not NIR's C-order).
    kind, params = _connection(np.asarray(weight, dtype=np.float64)[:, order], graded, fold, ints)
    out_order = np.arange(op.out_shape[0])
    return SynapseSpec(kind, params, op.out_shape, out_order, _lava_bias(op, ints, op.out_shape, out_order))


def diagonal(op: Op, in_shape: Shape, order: np.ndarray, values) -> np.ndarray:
    """Per-element values (NIR layout) as a diagonal matrix over the Lava-ordered elements."""
    return np.diag(to_lava(values, op.in_shape, in_shape, order).reshape(-1).astype(np.float64))


def _elementwise(op: Op, in_shape: Shape, order: np.ndarray, graded: bool, fold, ints) -> SynapseSpec:
    values = ints.weight if ints is not None else op.synapse.weight
    kind, params = _connection(diagonal(op, in_shape, order, values), graded, fold, ints)
    return SynapseSpec(kind, params, in_shape, order, None)


def _check_image(op: Op, in_shape: Shape, order: np.ndarray) -> None:
    expected_shape, expected = lava_layout(op.in_shape)
    if len(op.in_shape) not in (2, 3) or tuple(in_shape) != expected_shape or not np.array_equal(order, expected):
        raise UnsupportedError(f"{op.kind} needs a (C, H, W) or (C, L) input that Lava holds as (X, Y, C)", node=op.name)


def _window(op: Op, in_shape: Shape, order: np.ndarray, graded: bool, fold, ints) -> SynapseSpec:
    """Conv1d and Conv2d, and pools, which `ConvSynapse` gives as depthwise convolutions with a
    constant kernel (ones, or 1/area for an average: `weights` divides by the divisor)."""
    _check_image(op, in_shape, order)
    syn: ConvSynapse = op.synapse
    ndim = len(op.in_shape) - 1
    weight = syn.weights
    if ints is not None:
        if ints.weight_exp != 0:  # PyConvModelFixed ignores weight_exp: it cannot be honoured
            raise UnsupportedError(f"Lava's fixed-point Conv ignores weight_exp ({ints.weight_exp} here)", node=op.name)
        weight = ints.weight
    kernel = conv_kernel_to_lava(np.asarray(weight, dtype=np.float64))
    if fold is not None:  # a stock LIF's gain, one per output channel (neurons.py checks that it is)
        kernel = kernel * np.asarray(fold, dtype=np.float64).reshape(-1, 1, 1, 1)
    out_shape, out_order = lava_layout(op.out_shape)
    params = dict(weight=kernel.astype(np.int32) if ints is not None else kernel, input_shape=tuple(in_shape),
                  stride=xy(syn.stride, ndim), padding=xy(syn.padding, ndim, 0), dilation=xy(syn.dilation, ndim),
                  groups=syn.groups, num_message_bits=GRADED_BITS if graded else 0)
    return SynapseSpec("conv", params, out_shape, out_order, _lava_bias(op, ints, out_shape, out_order))


SYNAPSES: dict[type, Callable[..., SynapseSpec]] = {DenseSynapse: _dense, ElementwiseSynapse: _elementwise, ConvSynapse: _window}


def synapse_spec(op: Op, in_shape: Shape, order: np.ndarray, graded: bool, fold=None,
                 ints: SynapseInts | None = None) -> SynapseSpec:
    """The Lava connection of synapse op `op` whose input Lava holds as (in_shape, order): `fold`,
    a stock LIF's gain per output row or channel (float), or `ints`, its integers (loihi mode)."""
    return SYNAPSES[type(op.synapse)](op, in_shape, order, graded, fold, ints)


def takes_delays(op: Op) -> bool:
    """A synapse that a Delay op can fold into: a weight matrix, which Lava's DelayDense delays per
    weight (a Conv has no delays)."""
    return isinstance(op.synapse, (DenseSynapse, ElementwiseSynapse))
