"""Loihi fixed-point kernels of the synapse ops, registered per NIR type.

They compute what `ir.fixed.dense_fixed` and Lava's `PyConvModelFixed` compute (tests hold them
equal), faster: the integer products go through torch's float BLAS/convolution (dense layers by
activity, as in float mode), which is exact while every partial sum stays below 2^24 (float32)
or 2^53 (float64); the kernel checks that bound per call from max |x| and the largest row of
|weights| and takes the first width that is exact (beyond both, it splits x into halves that
are). Then, as Lava: the sum wraps to the int32 channel, shifts by weight_exp (a negative
exponent rounds towards -inf), wraps again; convolutions wrap their output to 24 bits. Wraps
that the bound proves idle are skipped. Our synapse bias, when there is one, is added last.

Values are int64 tensors (N, *shape); input spikes may arrive as uint8. Lava delivers every
synapse's output one step later; the executor applies that delay, not the kernel.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from spikestack.errors import UnsupportedError
from spikestack.ir import fixed
from spikestack.ir.primitives import ConvSynapse, DenseSynapse, ElementwiseSynapse, Role
from spikestack.ir.program import Op
from spikestack.ir.quantise import QuantisedProgram, SynapseInts
from spikestack.simulators.kernels import (Kernel, Parallel, cast, conv_geometry, convolve, matmul_by_activity,
                                           shared_kernel)

EXACT_FLOAT = ((torch.float32, 2**24), (torch.float64, 2**53))
SPLIT_BITS = 26  # |low half| < 2^26 and row sums of |weights| < 2^27 keep float64 exact


def _magnitude(x: torch.Tensor) -> int:
    """max |x| without a temporary the size of x."""
    if not x.numel():
        return 0
    return max(int(x.max()), -int(x.min()))


def _wrap(acc: torch.Tensor, bound: int, bits: int) -> torch.Tensor:
    """fixed.wrap_signed, skipped when |acc| <= bound proves it changes nothing."""
    if bound < 1 << (bits - 1):
        return acc
    return torch.from_numpy(fixed.wrap_signed(acc.numpy(), bits))


def _shift(acc: torch.Tensor, exp: int, bound: int) -> tuple[torch.Tensor, int]:
    """Lava's int32 sum, shift by weight_exp and int32 port; returns (a_out, bound on |a_out|)."""
    acc = _wrap(acc, bound, fixed.CHANNEL_BITS)
    bound = min(bound, 1 << (fixed.CHANNEL_BITS - 1))
    if exp > 0:
        acc, bound = acc << exp, bound << exp
    elif exp < 0:  # torch's >> on int64 is arithmetic: it rounds towards -inf, one more below 0
        acc, bound = acc >> -exp, (bound >> -exp) + 1
    return _wrap(acc, bound, fixed.CHANNEL_BITS), min(bound, 1 << (fixed.CHANNEL_BITS - 1))


def _exact_product(x: torch.Tensor, weight: np.ndarray, row_l1: int, product) -> tuple[torch.Tensor, int]:
    """product(x, weight) exactly, as int64, and a bound on its magnitude: in the narrowest float
    whose mantissa holds every partial sum; beyond float64's, x is split into 26-bit halves whose
    products each fit."""
    bound = _magnitude(x) * row_l1
    for dtype, limit in EXACT_FLOAT:
        if bound < limit:
            # exact integers in float: the conversion back loses nothing
            return cast(product(cast(x, dtype), torch.as_tensor(weight, dtype=dtype)), torch.int64), bound
    x = cast(x, torch.int64)
    high = x >> SPLIT_BITS
    low = x - (high << SPLIT_BITS)
    high_part = _exact_product(high, weight, row_l1, product)[0] << SPLIT_BITS
    return high_part + _exact_product(low, weight, row_l1, product)[0], bound


def _dense(op: Op, q: SynapseInts, parallel: Parallel) -> Kernel:
    weight = fixed.effective_weights(q.weight, num_weight_bits=q.weight_bits)  # what Lava's Dense multiplies with
    weight_t = np.ascontiguousarray(weight.T)
    weight_f32 = torch.as_tensor(weight_t, dtype=torch.float32)
    row_l1 = int(np.abs(weight).sum(axis=1).max(initial=0))
    n_in, scale = op.in_shape[-1], 2.0**q.weight_exp

    def run(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, n_in)
        macs = flat.numel() * weight_t.shape[1]
        bound = _magnitude(x) * row_l1
        if bound * max(scale, 1.0) < 2**24:  # the common case: no wrap, and the shift is exact in float32
            acc = matmul_by_activity(cast(flat, torch.float32), weight_f32, parallel)
            out = cast(torch.floor(acc * scale) if scale < 1 else acc * scale, torch.int64)
        else:
            acc, bound = _exact_product(flat, weight_t, row_l1, lambda a, w: parallel(macs, torch.matmul, a, w))
            out = _shift(acc, q.weight_exp, bound)[0]
        out = out.reshape(x.shape[0], *op.out_shape)
        return out + torch.from_numpy(q.bias) if q.bias is not None else out

    return run


def _scale(op: Op, q: SynapseInts, parallel: Parallel) -> Kernel:
    weight = torch.from_numpy(fixed.effective_weights(q.weight, num_weight_bits=q.weight_bits))
    w_max = int(weight.abs().max()) if weight.numel() else 0

    def run(x: torch.Tensor) -> torch.Tensor:
        bound = _magnitude(x) * w_max
        out = _shift(cast(x, torch.int64) * weight, q.weight_exp, bound)[0]
        return out + torch.from_numpy(q.bias) if q.bias is not None else out

    return run


def _conv(op: Op, q: SynapseInts, parallel: Parallel) -> Kernel:
    # Lava's Conv uses its weights as given (no clipping or truncation) and ignores weight_exp;
    # our quantiser gives conv ops exponent 0, and applies the exponent here if one is set.
    geometry = conv_geometry(op)
    row_l1 = int(np.abs(q.weight).reshape(q.weight.shape[0], -1).sum(axis=1).max(initial=0))

    def run(x: torch.Tensor) -> torch.Tensor:
        acc, bound = _exact_product(x, q.weight, row_l1, lambda a, w: convolve(a, w, geometry, parallel))
        acc, bound = _shift(acc, q.weight_exp, bound)
        out = acc if bound < 1 << (fixed.CONV_OUT_BITS - 1) else torch.from_numpy(fixed.conv_output_fixed(acc.numpy()))
        return out + torch.from_numpy(q.bias) if q.bias is not None else out

    return run


FIXED_KERNELS: dict[type, Callable[[Op, SynapseInts, Parallel], Kernel]] = {
    DenseSynapse: _dense, ElementwiseSynapse: _scale, ConvSynapse: _conv,
}


def fixed_kernel(op: Op, qprog: QuantisedProgram, parallel: Parallel) -> Kernel:
    """The Loihi kernel of a non-neuron op; raises UnsupportedError naming the node otherwise."""
    shared = shared_kernel(op)
    if shared is not None:
        return shared
    if op.primitive.role is Role.THRESHOLD:
        threshold = torch.from_numpy(np.broadcast_to(qprog.thresholds[op.name], op.in_shape).copy())
        return lambda x: (x > threshold).to(torch.int64)
    if type(op.synapse) not in FIXED_KERNELS:
        raise UnsupportedError(f"loihi mode has no kernel for '{op.kind}'", node=op.name)
    return FIXED_KERNELS[type(op.synapse)](op, qprog.synapses[op.name], parallel)
