"""Float kernels of the synapse and reshaping ops, registered per NIR type, plus the kernels that
both arithmetics share (Input, Output, Flatten, Delay).

A kernel is made once per op and called once per step (or once per block of steps, for ops that
depend on the graph inputs only) with a tensor (N, *in_shape) whose first dimension is the batch
(or steps x batch); it returns (N, *out_shape). Everything is torch on the CPU.

Threads: the simulator runs on one torch thread and hands the caller's threads only to products
big enough to gain from them (`Parallel`). Elementwise neuron updates of a few hundred thousand
values lose to OpenMP's fork/join, and on a shared 2-core machine a second thread that is
descheduled stalls every barrier: we measured elementwise steps 2-3x and small convolutions up
to 100x slower on two threads than on one, while a large matmul still gains.

Dense layers choose per call between dense compute and an event-driven gather of the weight
rows of the active inputs, by activity: the gather touches only the rows whose input is non-zero
in some sample, so it wins when few inputs are active across the batch (small batches, sparse
layers) and loses to one BLAS matmul once most rows are needed. Convolutions and pools are
always dense: torch's convolution beats any scatter we can write in Python at these sizes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from spikestack.errors import UnsupportedError
from spikestack.ir.program import Op
from spikestack.ir.shapes import conv_padding

Kernel = Callable[[torch.Tensor], torch.Tensor]
PARALLEL_MIN_MACS = 1 << 22  # below this a product runs on one thread (see the module docstring)
# Gather the rows of the active inputs when fewer than this fraction of rows is active in the
# batch; above it one BLAS matmul is faster. Measured, one thread, 784 x 256 weights: the gather
# wins below ~7% active rows at B=1 (a dense matvec is only ~17 us) and below ~20% at B=16.
GATHER_MAX_ACTIVE_ROWS = 0.1
ACTIVITY_PROBE = 64  # samples whose activity predicts the union of active rows of a large batch


class Parallel:
    """Runs a product on `threads` torch threads when it has at least PARALLEL_MIN_MACS
    multiply-accumulates, on the one thread the simulator otherwise keeps."""

    def __init__(self, threads: int):
        self.threads = threads

    def __call__(self, macs: int, fn: Callable, *args):
        if self.threads <= 1 or macs < PARALLEL_MIN_MACS:
            return fn(*args)
        torch.set_num_threads(self.threads)
        try:
            return fn(*args)
        finally:
            torch.set_num_threads(1)


NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.int64: np.int64}


def cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x.to(dtype) through numpy: torch's CPU conversions measured 3-5x slower than numpy's."""
    if x.dtype == dtype:
        return x
    return torch.from_numpy(x.numpy().astype(NUMPY_DTYPES[dtype]))


def pair(value, n: int) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(value)).astype(int).ravel()
    return tuple(int(arr[0]) for _ in range(n)) if arr.size == 1 else tuple(int(a) for a in arr[:n])


def conv_geometry(op: Op) -> dict:
    """stride, padding, dilation, groups of a Conv1d/Conv2d op, or of a pool seen as a
    depthwise convolution, in the keyword form torch's convolutions take."""
    node = op.params
    if op.kind in ("Conv1d", "Conv2d"):
        ndim = np.ndim(node.weight) - 2
        return dict(stride=pair(node.stride, ndim), padding=conv_padding(node, op.in_shape[1:]),
                    dilation=pair(node.dilation, ndim), groups=int(node.groups))
    return dict(stride=pair(node.stride, 2), padding=pair(node.padding, 2), dilation=(1, 1), groups=op.in_shape[0])


def pool_kernel_size(op: Op) -> tuple[int, int]:
    return pair(op.params.kernel_size, 2)


def convolve(x: torch.Tensor, weight: torch.Tensor, geometry: dict, parallel: Parallel,
             bias: torch.Tensor | None = None) -> torch.Tensor:
    conv = F.conv1d if weight.dim() == 3 else F.conv2d
    # multiply-accumulates: every input element meets at most a kernel's worth of weights
    macs = x.numel() * weight.shape[0] // geometry["groups"] * int(np.prod(weight.shape[2:]))
    return parallel(macs, conv, x, weight, bias, *(geometry[k] for k in ("stride", "padding", "dilation", "groups")))


def matmul_by_activity(x: torch.Tensor, weight_t: torch.Tensor, parallel: Parallel) -> torch.Tensor:
    """x (N, n_in) @ weight_t (n_in, n_out), by an event-driven row gather or dense compute.

    The rows needed are the inputs active in any of the N samples. For large N, first estimate
    that union from the activity p of a few samples, 1 - (1 - p)^N, so that a busy layer pays
    no full scan before its matmul."""
    n, n_in = x.shape
    if n > ACTIVITY_PROBE:
        p = float(torch.count_nonzero(x[:ACTIVITY_PROBE])) / (ACTIVITY_PROBE * n_in)
        if 1.0 - (1.0 - p) ** n >= GATHER_MAX_ACTIVE_ROWS:
            return parallel(x.numel() * weight_t.shape[1], torch.matmul, x, weight_t)
    active = (x.any(dim=0) if n > 1 else x[0] != 0).nonzero().squeeze(1)
    if active.numel() >= GATHER_MAX_ACTIVE_ROWS * n_in:
        return parallel(x.numel() * weight_t.shape[1], torch.matmul, x, weight_t)
    return parallel(n * active.numel() * weight_t.shape[1], torch.matmul, x[:, active], weight_t[active])


def _tensor(value, dtype, shape=None) -> torch.Tensor:
    arr = np.asarray(value, dtype=np.float64)
    if shape is not None:
        arr = np.broadcast_to(arr, shape)
    # A copy: program parameters are read-only arrays, which torch would share and warn about.
    return torch.tensor(np.array(arr, order="C"), dtype=dtype)


def _affine(op: Op, dtype, parallel: Parallel) -> Kernel:
    weight_t = _tensor(op.params.weight, dtype).T.contiguous()
    bias = getattr(op.params, "bias", None)
    bias = _tensor(bias, dtype) if bias is not None and np.any(np.asarray(bias) != 0) else None
    n_in = op.in_shape[-1]

    def run(x: torch.Tensor) -> torch.Tensor:
        y = matmul_by_activity(x.reshape(-1, n_in), weight_t, parallel)
        if bias is not None:
            y = y + bias
        return y.reshape(x.shape[0], *op.out_shape)

    return run


def _conv(op: Op, dtype, parallel: Parallel) -> Kernel:
    weight = _tensor(op.params.weight, dtype)
    bias = getattr(op.params, "bias", None)
    bias = _tensor(bias, dtype, (weight.shape[0],)) if bias is not None else None
    geometry = conv_geometry(op)
    return lambda x: convolve(x, weight, geometry, parallel, bias)


def _pool(op: Op, dtype, parallel: Parallel) -> Kernel:
    # A sum pool is a depthwise convolution with a kernel of ones: exact, unlike avg * k^2.
    kernel = pool_kernel_size(op)
    ones = torch.ones((op.in_shape[0], 1, *kernel), dtype=dtype)
    geometry = conv_geometry(op)
    area = float(np.prod(kernel))
    if op.kind == "SumPool2d":
        return lambda x: convolve(x, ones, geometry, parallel)
    return lambda x: convolve(x, ones, geometry, parallel) / area  # AvgPool2d counts the padding, as torch


def _scale(op: Op, dtype, parallel: Parallel) -> Kernel:
    scale = _tensor(op.params.scale, dtype, op.in_shape)
    return lambda x: x * scale


def _threshold(op: Op, dtype, parallel: Parallel) -> Kernel:
    threshold = _tensor(op.params.threshold, dtype, op.in_shape)
    return lambda x: torch.sign(x - threshold).clamp_(min=0)  # strict, as NIR's; fast (see neurons.heaviside)


def identity(op: Op) -> Kernel:
    return lambda x: x


def flatten(op: Op) -> Kernel:
    # Flatten merges adjacent dimensions, so in C order it is a reshape.
    return lambda x: x.reshape(x.shape[0], *op.out_shape)


class DelayKernel:
    """Per-element delays of whole steps: out[t] = x[t - d], zero before the first input.

    A ring buffer of max(d) + 1 steps; each element reads its own slot, so heterogeneous
    delays cost one gather per step rather than a loop over elements.
    """

    def __init__(self, op: Op):
        self.steps = torch.as_tensor(np.broadcast_to(np.asarray(op.params), op.out_shape).copy()).reshape(-1)
        self.depth = int(self.steps.max()) + 1 if self.steps.numel() else 1
        self.buffer: torch.Tensor | None = None
        self.t = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        if self.buffer is None:
            self.buffer = torch.zeros((self.depth, *flat.shape), dtype=x.dtype)
        self.buffer[self.t % self.depth] = flat
        slots = (self.t - self.steps) % self.depth
        out = self.buffer[slots, :, torch.arange(flat.shape[1])].T
        self.t += 1
        return out.reshape(x.shape)


FLOAT_KERNELS: dict[str, Callable[[Op, torch.dtype, Parallel], Kernel]] = {
    "Affine": _affine, "Linear": _affine, "Conv1d": _conv, "Conv2d": _conv, "SumPool2d": _pool,
    "AvgPool2d": _pool, "Scale": _scale, "Threshold": _threshold,
}
SHARED_KERNELS: dict[str, Callable[[Op], Kernel]] = {
    "Input": identity, "Output": identity, "Flatten": flatten, "Delay": DelayKernel,
}


def float_kernel(op: Op, dtype: torch.dtype, parallel: Parallel) -> Kernel:
    """The float kernel of a non-neuron op; raises UnsupportedError naming the node otherwise."""
    if op.kind in SHARED_KERNELS:
        return SHARED_KERNELS[op.kind](op)
    if op.kind not in FLOAT_KERNELS:
        raise UnsupportedError(f"the simulator has no kernel for '{op.kind}'", node=op.name)
    return FLOAT_KERNELS[op.kind](op, dtype, parallel)
