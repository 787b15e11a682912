"""Compiled sliding-window ops (NIR's convolutions, and pools as depthwise convolutions): each input
event adds its kernel footprint to the output, so the work follows the input's activity.

An input element (c, y, x) reaches output (o, oy, ox) through tap (ky, kx) where
y + padding - ky * dilation = oy * stride (and likewise along x), for the output channels o of
c's group; those (tap, output position) pairs are listed once per input position (`tap_table`,
from `ir.primitives.window_taps`), so the kernel does no index arithmetic per tap. Weights are laid
out (groups, C_in/groups, KH*KW, C_out/groups) and the accumulator (OH*OW, C_out), so the innermost
loop runs over contiguous output channels of the group. Float: (sum + bias) / divisor, as torch's pooling and convolution; Loihi: Lava's
`PyConvModelFixed` (exact sum, weight_exp shift with the int32 wraps, 24-bit output wrap), then
our bias. Counts are fused into the scan of the input (`synapses.take_events`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import overload

from spikestack.ir import fixed
from spikestack.ir.primitives import window_taps
from spikestack.simulators.compiled.events import SPIKES_OUT, events
from spikestack.simulators.compiled.synapses import lava_sum, store_synapse_counts, take_events


@numba.njit(cache=True, nogil=True)
def conv_events(x, weight, taps, tap_start, c_in, c_out, out_size, bias, divisor, weight_exp, out, fan, nonzero,
                kinds, dense_macs, counts, first, last):
    """x (S, B, C_in*H*W) -> out (S, B, C_out*OH*OW). weight (groups, C_in/groups, KH*KW, C_out/groups);
    the connections of input position p (y * W + x) are taps[tap_start[p]:tap_start[p + 1]], each a
    (kernel tap, output position) pair (`tap_table`); bias one value per output element, or none."""
    c_in_group, c_out_group = weight.shape[1], weight.shape[3]
    positions = x.shape[2] // c_in
    for b in range(first, last):
        active = np.empty(x.shape[2], np.int64)
        acc = np.empty((out_size, c_out), accumulator_type(out))
        counted = np.zeros(4, np.int64)
        for t in range(x.shape[0]):
            counted[:] = 0
            counted[3] = 1
            k = take_events(x[t, b], fan, nonzero, 0, kinds[0], active, counted)
            acc[:] = 0
            for a in range(k):
                index = active[a]
                value = x[t, b, index]
                channel, position = index // positions, index % positions
                group, local = channel // c_in_group, channel % c_in_group
                base = group * c_out_group
                for j in range(tap_start[position], tap_start[position + 1]):
                    tap, target = taps[j, 0], taps[j, 1]
                    for o in range(c_out_group):
                        acc[target, base + o] += value * weight[group, local, tap, o]
            emit(acc, bias, weight_exp, divisor, out[t, b])
            store_synapse_counts(counts[t, b], counted, dense_macs)
            counts[t, b, SPIKES_OUT] = events(out[t, b], kinds[1])


@numba.njit(inline="always")
def emit(acc, bias, weight_exp, divisor, row):
    """The block's outputs of one step: acc (OH*OW, C_out) -> row (C_out*OH*OW), written in order (the
    reads stride through acc, which stays in cache), with the options tested once, not per value."""
    out_size, c_out = acc.shape
    if bias.shape[0] == 0 and divisor == 1:
        for o in range(c_out):
            for p in range(out_size):
                row[o * out_size + p] = window_output(acc[p, o], 0, weight_exp, 1.0)
        return
    for o in range(c_out):
        for p in range(out_size):
            at = o * out_size + p
            row[at] = window_output(acc[p, o], bias[at] if bias.shape[0] else 0, weight_exp, divisor)


def tap_table(in_spatial, out_spatial, kernel, stride, padding, dilation) -> tuple[np.ndarray, np.ndarray]:
    """(taps (n, 2): kernel tap and output position per connection, sorted by input position;
    tap_start (H*W + 1,): where each input position's connections begin). From `window_taps` along
    each axis; 1-d windows have height 1."""
    rows = [window_taps(*args) for args in zip(in_spatial, out_spatial, kernel, stride, padding, dilation)]
    (oy, ky, iy), (ox, kx, ix) = rows if len(rows) == 2 else [(np.zeros(1, int),) * 3] + rows
    pair = np.ix_(np.arange(len(iy)), np.arange(len(ix)))
    position = (iy[pair[0]] * in_spatial[-1] + ix[pair[1]]).ravel()
    tap = (ky[pair[0]] * kernel[-1] + kx[pair[1]]).ravel()
    target = (oy[pair[0]] * out_spatial[-1] + ox[pair[1]]).ravel()
    order = np.argsort(position, kind="stable")
    starts = np.searchsorted(position[order], np.arange(int(np.prod(in_spatial)) + 1))
    return np.stack([tap[order], target[order]], axis=1).astype(np.int64), starts.astype(np.int64)


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
    """(C_out, C_in/groups, *kernel) -> (groups, C_in/groups, KH*KW, C_out/groups), as the kernel
    reads it: for a group's input channel, the taps, then that group's output channels."""
    c_out, c_in_group = weight.shape[:2]
    per_group = weight.reshape(groups, c_out // groups, c_in_group, -1)
    return np.ascontiguousarray(per_group.transpose(0, 2, 3, 1), dtype=dtype)
