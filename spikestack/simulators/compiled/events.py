"""Event counting shared by the compiled kernels, and the kernel of ops that only pass values on.

Counts follow `ir.counts` exactly (its module docstring): in "binary" or "counts" arrays a value k
is k events, in "graded" arrays each non-zero value is one. Kernels write one row of
`ir.run.METRICS` per step and sample into a (S, B, len(METRICS)) int64 array; the engine hands
each metric's column to the run's `Counts`.
"""

from __future__ import annotations

import numba
import numpy as np

from spikestack.ir.run import METRICS

KIND_CODES = {"binary": 0, "counts": 1, "graded": 2}
BINARY, COUNTS, GRADED = KIND_CODES["binary"], KIND_CODES["counts"], KIND_CODES["graded"]
(SPIKES_IN, SPIKES_OUT, SYNAPTIC_EVENTS, EFFECTIVE_ACS, EFFECTIVE_MACS, DENSE_MACS, NEURON_UPDATES,
 ACTIVE_NEURON_UPDATES) = (METRICS.index(m) for m in (
    "spikes_in", "spikes_out", "synaptic_events", "effective_acs", "effective_macs", "dense_macs",
    "neuron_updates", "active_neuron_updates"))


@numba.njit(inline="always")
def event_value(value, kind: int) -> int:
    """Events one value stands for: 1 if non-zero in a graded array, else the value itself (an
    integer: spike counts are). Integer sums vectorise; float ones would run one add at a time."""
    if kind == GRADED:
        return np.int64(value != 0)
    return np.int64(value)


@numba.njit(inline="always")
def events(row, kind: int) -> int:
    """Events in one step of one sample (a 1-d row). Two plain loops, which LLVM vectorises."""
    total = 0
    if kind == GRADED:
        for k in range(row.shape[0]):
            total += row[k] != 0
    else:
        for k in range(row.shape[0]):
            total += np.int64(row[k])
    return total


@numba.njit(cache=True, nogil=True)
def count_passing(x, y, in_kind, out_kind, counts, first, last):
    """spikes_in and spikes_out of an op that moves values (input, output, reshape, delay,
    threshold): x, y (S, B, n) what it took and gave; counts (S, B, M)."""
    steps = x.shape[0]
    for b in range(first, last):
        for t in range(steps):
            counts[t, b, SPIKES_IN] = events(x[t, b], in_kind)
            counts[t, b, SPIKES_OUT] = events(y[t, b], out_kind)


@numba.njit(cache=True, nogil=True)
def delay_steps(x, ring, steps_of, t0, out, first, last):
    """NIR's Delay: out[t] = x[t - d] per element, zero before the first input. ring (depth, B, n)
    keeps the last `depth` inputs across blocks; t0 is the block's first absolute step."""
    depth = ring.shape[0]
    for b in range(first, last):
        for t in range(x.shape[0]):
            now = t0 + t
            ring[now % depth, b] = x[t, b]
            for k in range(x.shape[2]):
                out[t, b, k] = ring[(now - steps_of[k]) % depth, b, k]

