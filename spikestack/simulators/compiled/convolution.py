"""Compiled sliding-window ops (NIR's convolutions, and pools as depthwise convolutions): each input
event adds its kernel footprint to the output, so the work follows the input's activity.

An input element (c, y, x) reaches output (o, oy, ox) through tap (ky, kx) where
y + padding - ky * dilation = oy * stride (and likewise along x), for the output channels o of
c's group. Weights are laid out (groups, C_in/groups, KH, KW, C_out/groups) and the accumulator (OH, OW, C_out), so
the innermost loop runs over contiguous output channels of the group. 1-d convolutions run as 2-d ones of
height 1. Float: (sum + bias) / divisor, as torch's pooling and convolution; Loihi: Lava's
`PyConvModelFixed` (exact sum, weight_exp shift with the int32 wraps, 24-bit output wrap), then
our bias. Counts are fused into the scan of the input (`synapses.take_events`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import overload

from spikestack.ir import fixed
from spikestack.simulators.compiled.events import SPIKES_OUT, events
from spikestack.simulators.compiled.synapses import lava_sum, store_synapse_counts, take_events


@numba.njit(cache=True, nogil=True)
def conv_events(x, weight, in_shape, out_shape, geometry, bias, divisor, weight_exp, out, fan, nonzero,
                kinds, dense_macs, counts, first, last):
    """x (S, B, C_in*H*W) -> out (S, B, C_out*OH*OW). weight (groups, C_in/groups, KH, KW, C_out/groups); in_shape
    (C_in, H, W); out_shape (C_out, OH, OW); geometry (stride y, x, padding y, x, dilation y, x, groups);
    bias one value per output element, or none."""
    steps, batch = x.shape[0], x.shape[1]
    c_in, height, width = in_shape[0], in_shape[1], in_shape[2]
    c_out, out_h, out_w = out_shape[0], out_shape[1], out_shape[2]
    stride_y, stride_x, pad_y, pad_x, dil_y, dil_x, groups = geometry
    c_in_group, c_out_group = c_in // groups, c_out // groups
    kernel_h, kernel_w = weight.shape[2], weight.shape[3]
    for b in range(first, last):
        active = np.empty(x.shape[2], np.int64)
        acc = np.empty((out_h, out_w, c_out), accumulator_type(out))
        counted = np.zeros(4, np.int64)
        for t in range(steps):
            counted[:] = 0
            counted[3] = 1
            k = take_events(x[t, b], fan, nonzero, 0, kinds[0], active, counted)
            acc[:] = 0
            for a in range(k):
                index = active[a]
                value = x[t, b, index]
                c, rest = index // (height * width), index % (height * width)
                y, z = rest // width, rest % width
                group, local = c // c_in_group, c % c_in_group
                first = group * c_out_group
                for ky in range(kernel_h):
                    row = y + pad_y - ky * dil_y
                    if row < 0 or row % stride_y or row // stride_y >= out_h:
                        continue
                    oy = row // stride_y
                    for kx in range(kernel_w):
                        col = z + pad_x - kx * dil_x
                        if col < 0 or col % stride_x or col // stride_x >= out_w:
                            continue
                        ox = col // stride_x
                        for o in range(c_out_group):
                            acc[oy, ox, first + o] += value * weight[group, local, ky, kx, o]
            for o in range(c_out):
                for oy in range(out_h):
                    for ox in range(out_w):
                        at = (o * out_h + oy) * out_w + ox
                        out[t, b, at] = window_output(acc[oy, ox, o], bias[at] if bias.shape[0] else 0,
                                                      weight_exp, divisor)
            store_synapse_counts(counts[t, b], counted, dense_macs)
            counts[t, b, SPIKES_OUT] = events(out[t, b], kinds[1])


def accumulator_type(out):
    """The dtype a window's sums run in: float64 for float outputs (each sum then rounds once, to the
    float32 nearest the exact sum, whatever the order of the events), int64 for Loihi's integers."""


@overload(accumulator_type, inline="always")
def _accumulator_type(out):
    if isinstance(out.dtype, types.Float):
        return lambda out: np.float64
    return lambda out: np.int64


def window_output(acc, bias, weight_exp, divisor):
    """A window's sum as emitted: float, (sum + bias) / divisor (torch's order for an average pool);
    Loihi integers, Lava's conv output (`lava_sum`, then a 24-bit wrap) plus our bias."""


@overload(window_output, inline="always")
def _window_output(acc, bias, weight_exp, divisor):
    if isinstance(acc, types.Float):
        return lambda acc, bias, weight_exp, divisor: (acc + bias) / divisor if divisor != 1 else acc + bias
    return lambda acc, bias, weight_exp, divisor: fixed._wrap(lava_sum(acc, weight_exp), fixed.CONV_OUT_BITS) + bias


def conv_weight_layout(weight: np.ndarray, groups: int, dtype) -> np.ndarray:
    """(C_out, C_in/groups, *kernel) -> (groups, C_in/groups, KH, KW, C_out/groups), as the kernel
    reads it: for a group's input channel, the taps, then that group's output channels."""
    if weight.ndim == 3:  # 1-d: height 1
        weight = weight[:, :, None, :]
    c_out, c_in_group, kh, kw = weight.shape
    per_group = weight.reshape(groups, c_out // groups, c_in_group, kh, kw)
    return np.ascontiguousarray(per_group.transpose(0, 2, 3, 4, 1), dtype=dtype)
