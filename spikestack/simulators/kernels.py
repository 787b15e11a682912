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
from spikestack.ir.primitives import ConvSynapse, DenseSynapse, ElementwiseSynapse, Role
from spikestack.ir.program import Op

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


def conv_geometry(op: Op) -> dict:
    """stride, padding, dilation, groups of a sliding-window op (`ConvSynapse`: a convolution, or
    a pool seen as a depthwise convolution), in the keyword form torch's convolutions take."""
    syn: ConvSynapse = op.synapse
    return dict(stride=syn.stride, padding=syn.padding, dilation=syn.dilation, groups=syn.groups)


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
    syn: DenseSynapse = op.synapse
    weight_t = _tensor(syn.weight, dtype).T.contiguous()
    bias = _tensor(syn.bias, dtype) if syn.bias is not None and np.any(syn.bias != 0) else None
    n_in = op.in_shape[-1]

    def run(x: torch.Tensor) -> torch.Tensor:
        y = matmul_by_activity(x.reshape(-1, n_in), weight_t, parallel)
        if bias is not None:
            y = y + bias
        return y.reshape(x.shape[0], *op.out_shape)

    return run


def _window(op: Op, dtype, parallel: Parallel) -> Kernel:
    syn: ConvSynapse = op.synapse
    weight = _tensor(syn.weight, dtype)
    bias = _tensor(syn.bias, dtype, (weight.shape[0],)) if syn.bias is not None else None
    geometry = conv_geometry(op)
    if syn.divisor == 1.0:
        return lambda x: convolve(x, weight, geometry, parallel, bias)
    # An average pool sums exactly (a kernel of ones), then divides, counting the padding, as torch.
    return lambda x: convolve(x, weight, geometry, parallel, bias) / syn.divisor


def _scale(op: Op, dtype, parallel: Parallel) -> Kernel:
    scale = _tensor(op.synapse.weight, dtype, op.in_shape)
    return lambda x: x * scale


def _threshold(op: Op, dtype, parallel: Parallel) -> Kernel:
    threshold = _tensor(op.params.threshold, dtype, op.in_shape)
    return lambda x: torch.sign(x - threshold).clamp_(min=0)  # strict, as NIR's; fast (see neurons.heaviside)


def identity(op: Op) -> Kernel:
    return lambda x: x


def reshape(op: Op) -> Kernel:
    # Flatten merges adjacent dimensions, so in C order it is a reshape.
    return lambda x: x.reshape(x.shape[0], *op.out_shape)


class DelayKernel:
    """Per-element delays of whole steps: out[t] = x[t - d], zero before the first input.

    A ring buffer of max(d) + 1 steps; each element reads its own slot, so heterogeneous
    delays cost one gather per step rather than a loop over elements.
    """

    def __init__(self, op: Op):
        self.steps = torch.as_tensor(np.broadcast_to(op.params.steps, op.out_shape).copy()).reshape(-1)
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


SYNAPSE_KERNELS: dict[type, Callable[[Op, torch.dtype, Parallel], Kernel]] = {
    DenseSynapse: _affine, ConvSynapse: _window, ElementwiseSynapse: _scale,
}
# Ops whose kernel is the same in both arithmetics: they move values, they do not compute them.
SHARED_KERNELS: dict[Role, Callable[[Op], Kernel]] = {
    Role.INPUT: identity, Role.OUTPUT: identity, Role.RESHAPE: reshape, Role.DELAY: DelayKernel,
}


def shared_kernel(op: Op) -> Kernel | None:
    """The kernel of an op that moves values (input, output, reshape, delay); None for others."""
    make = SHARED_KERNELS.get(op.primitive.role)
    return make(op) if make is not None else None


def float_kernel(op: Op, dtype: torch.dtype, parallel: Parallel) -> Kernel:
    """The float kernel of a non-neuron op; raises UnsupportedError naming the node otherwise."""
    shared = shared_kernel(op)
    if shared is not None:
        return shared
    if op.primitive.role is Role.THRESHOLD:
        return _threshold(op, dtype, parallel)
    if type(op.synapse) not in SYNAPSE_KERNELS:
        raise UnsupportedError(f"the simulator has no kernel for '{op.kind}'", node=op.name)
    return SYNAPSE_KERNELS[type(op.synapse)](op, dtype, parallel)
