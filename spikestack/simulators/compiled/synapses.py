"""Compiled dense, elementwise and threshold ops, float and Loihi, counts fused into the same pass.

Dense layers are event-driven: per step and sample, one pass over the input finds the active
elements (and counts their events, synaptic events and effective operations against the
per-element fan-outs of `ir.counts.synapse_fan_out`), then only their weight rows are added
(`acc += x_i * W[i, :]`). The engine runs a busy layer's block through one dense matrix
product instead (`engine.DENSE_ABOVE`) and counts it with `count_synapse`.

Loihi: the products are exact int64 sums, then Lava's Dense arithmetic (`ir.fixed`): wrap to the
int32 channel, shift by weight_exp, wrap again, add our bias. int64 overflow wraps modulo 2^64,
which the int32 wrap that follows makes harmless, so the result equals Lava's for any input.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import overload

from spikestack.ir import fixed
from spikestack.simulators.compiled.events import (BINARY, COUNTS, DENSE_MACS, EFFECTIVE_ACS, EFFECTIVE_MACS, SPIKES_IN,
                                                   SPIKES_OUT, SYNAPTIC_EVENTS, event_value, events)


@numba.njit(inline="always")
def take_events(row, fan, nonzero, offset, in_kind, active, counted):
    """Scan one input row: store the active indices in `active`, add spikes_in, synaptic events and
    effective ops to counted[0:3] and clear counted[3] if a value is not 0/1; returns how many."""
    k = 0
    for j in range(row.shape[0]):  # branch-free: a store per element, kept only where active
        active[k] = j
        k += row[j] != 0
    for a in range(k):
        j = active[a]
        value = row[j]
        counted[0] += event_value(value, in_kind)
        counted[1] += (np.int64(value) if in_kind == COUNTS else 1) * fan[offset + j]
        counted[2] += nonzero[offset + j]
        if value != 1:
            counted[3] = 0
    return k


@numba.njit(inline="always")
def add_rows(acc, weight_t, active, k):
    """acc += weight_t[i] for the k active rows i, in their order, four rows per pass over acc:
    the same sums, in the same order, as one row at a time, with a quarter of acc's loads and
    stores (20% faster on W's first layer)."""
    a = 0
    while a + 4 <= k:
        r1, r2, r3, r4 = weight_t[active[a]], weight_t[active[a + 1]], weight_t[active[a + 2]], weight_t[active[a + 3]]
        for o in range(acc.shape[0]):
            acc[o] = (((acc[o] + r1[o]) + r2[o]) + r3[o]) + r4[o]
        a += 4
    for a in range(a, k):
        row = weight_t[active[a]]
        for o in range(acc.shape[0]):
            acc[o] += row[o]


@numba.njit(inline="always")
def add_scaled_rows(acc, weight_t, active, k, x):
    """acc += x[i] * weight_t[i] for the k active rows i, in their order (as `add_rows`)."""
    a = 0
    while a + 4 <= k:
        i1, i2, i3, i4 = active[a], active[a + 1], active[a + 2], active[a + 3]
        v1, v2, v3, v4 = x[i1], x[i2], x[i3], x[i4]
        r1, r2, r3, r4 = weight_t[i1], weight_t[i2], weight_t[i3], weight_t[i4]
        for o in range(acc.shape[0]):
            acc[o] = (((acc[o] + v1 * r1[o]) + v2 * r2[o]) + v3 * r3[o]) + v4 * r4[o]
        a += 4
    for a in range(a, k):
        value, row = x[active[a]], weight_t[active[a]]
        for o in range(acc.shape[0]):
            acc[o] += value * row[o]


@numba.njit(inline="always")
def store_synapse_counts(counts, counted, dense_macs):
    counts[SPIKES_IN], counts[SYNAPTIC_EVENTS] = counted[0], counted[1]
    counts[EFFECTIVE_ACS if counted[3] else EFFECTIVE_MACS] = counted[2]
    counts[DENSE_MACS] = dense_macs


def lava_sum(acc, weight_exp):
    """What a synapse's sum becomes: itself in float mode; in Loihi's integers (the dtype decides, at
    compile time), Lava's Dense after its sum: int32 channel, shift by weight_exp (a negative one
    floors), int32 again."""


@overload(lava_sum, inline="always")
def _lava_sum(acc, weight_exp):
    if isinstance(acc, types.Float):
        return lambda acc, weight_exp: acc

    def impl(acc, weight_exp):
        acc = fixed._wrap(acc, fixed.CHANNEL_BITS)
        acc = acc << weight_exp if weight_exp > 0 else acc >> -weight_exp
        return fixed._wrap(acc, fixed.CHANNEL_BITS)

    return impl


@numba.njit(cache=True, nogil=True)
def dense_events(x, weight_t, bias, weight_exp, out, fan, nonzero, kinds, dense_macs, counts, first, last):
    """x (S, B, R, n_in) -> out (S, B, R, n_out) = x @ weight_t (+ bias), by row gather; R rows per
    sample (an Affine over the last axis of a larger input). Integers: Lava's arithmetic with
    weight_exp (`lava_sum`); floats: weight_exp ignored. bias (R * n_out,) or (0,). counts (S, B, M)."""
    steps, batch, rows, n_in = x.shape
    n_out = weight_t.shape[1]
    binary = kinds[0] == BINARY
    for b in range(first, last):
        active = np.empty(n_in, np.int64)
        acc = np.empty(n_out, weight_t.dtype)  # Loihi: int32, whose wrap is Lava's int32 channel
        counted = np.zeros(4, np.int64)
        for t in range(steps):
            counted[:] = 0
            counted[3] = 1
            emitted = 0
            for r in range(rows):
                k = take_events(x[t, b, r], fan, nonzero, r * n_in, kinds[0], active, counted)
                acc[:] = 0
                if binary:
                    add_rows(acc, weight_t, active, k)
                else:
                    add_scaled_rows(acc, weight_t, active, k, x[t, b, r])
                target = out[t, b, r]
                for o in range(n_out):
                    y = lava_sum(acc[o], weight_exp)
                    target[o] = y + bias[r * n_out + o] if bias.shape[0] else y
                emitted += events(target, kinds[1])
            store_synapse_counts(counts[t, b], counted, dense_macs)
            counts[t, b, SPIKES_OUT] = emitted


@numba.njit(inline="always")
def sum_events(block, kind):
    total = 0
    for r in range(block.shape[0]):
        total += events(block[r], kind)
    return total


@numba.njit(cache=True, nogil=True)
def lava_outputs(acc, weight_exp, bias, out, first, last):
    """A dense product's exact sums acc (S, B, R * n_out), as Lava's Dense emits them (`lava_sum`),
    plus our bias (R * n_out,) or (0,), into out."""
    for b in range(first, last):
        for t in range(acc.shape[0]):
            for o in range(acc.shape[2]):
                y = lava_sum(np.int64(acc[t, b, o]), weight_exp)
                out[t, b, o] = y + bias[o] if bias.shape[0] else y


@numba.njit(cache=True, nogil=True)
def count_synapse(x, y, fan, nonzero, kinds, dense_macs, counts, first, last):
    """The counts of a synapse op computed without the event path: x (S, B, n_in), y (S, B, n_out)."""
    for b in range(first, last):
        mine = np.empty(x.shape[2], np.int64)
        counted = np.zeros(4, np.int64)
        for t in range(x.shape[0]):
            counted[:] = 0
            counted[3] = 1
            take_events(x[t, b], fan, nonzero, 0, kinds[0], mine, counted)
            store_synapse_counts(counts[t, b], counted, dense_macs)
            counts[t, b, SPIKES_OUT] = events(y[t, b], kinds[1])


@numba.njit(cache=True, nogil=True)
def elementwise(x, weight, bias, weight_exp, out, fan, nonzero, kinds, dense_macs, counts, first, last):
    """NIR's Scale: out = weight * x per element (Loihi: then Lava's shift and wraps, and our bias)."""
    steps, batch, n = x.shape
    for b in range(first, last):
        counted = np.zeros(4, np.int64)
        active = np.empty(n, np.int64)
        for t in range(steps):
            counted[:] = 0
            counted[3] = 1
            take_events(x[t, b], fan, nonzero, 0, kinds[0], active, counted)
            for j in range(n):
                y = lava_sum(x[t, b, j] * weight[j], weight_exp)
                out[t, b, j] = y + bias[j] if bias.shape[0] else y
            store_synapse_counts(counts[t, b], counted, dense_macs)
            counts[t, b, SPIKES_OUT] = events(out[t, b], kinds[1])


@numba.njit(cache=True, nogil=True)
def threshold(x, level, out, kinds, counts, first, last):
    """NIR's Threshold: 1 where x > level (strict), else 0."""
    for b in range(first, last):
        for t in range(x.shape[0]):
            for j in range(x.shape[2]):
                out[t, b, j] = 1 if x[t, b, j] > level[j] else 0
            counts[t, b, SPIKES_IN] = events(x[t, b], kinds[0])
            counts[t, b, SPIKES_OUT] = events(out[t, b], kinds[1])
