"""How many cores one layer needs: its neurons split evenly over the fewest cores within per-core limits.

A core's load is counted from the neurons it holds: neurons, synapses (their fan-in) and input axons
(the distinct presynaptic neurons they read). Output axons depend on where the consumers sit, so the
mesh placement (mesh.py) checks those after laying every layer out.
"""

from __future__ import annotations

import numpy as np

from spikestack.energy.layers import Layer
from spikestack.errors import ChipError


def chunk_starts(n: int, k: int) -> np.ndarray:
    """First neuron of each of k near-equal chunks (numpy's array_split sizes)."""
    sizes = np.full(k, n // k) + (np.arange(k) < n % k)
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def chunk_loads(layer: Layer, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neurons, synapses and input axons of each chunk of consecutive neurons beginning at `starts`."""
    neurons = np.diff(np.append(starts, layer.neurons))
    synapses = np.add.reduceat(layer.fan_in, starts) if layer.neurons else np.zeros(0, np.int64)
    axons = np.zeros(len(starts), np.int64)
    for matrix in layer.inputs.values():
        axons += distinct_sources(matrix, starts)
    return neurons, synapses, axons


def distinct_sources(matrix, starts: np.ndarray) -> np.ndarray:
    """Per chunk of rows beginning at `starts`, the distinct columns its rows read (what
    `presynaptic_neurons` counts for one chunk), for every chunk in one pass over the nonzeros: a
    loop over chunks costs chunks x inputs, hours for a million one-neuron chunks."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    chunk = np.searchsorted(starts, rows, side="right") - 1
    pairs = np.unique(chunk.astype(np.int64) * matrix.shape[1] + matrix.indices)
    return np.bincount(pairs // matrix.shape[1], minlength=len(starts)).astype(np.int64)


def split_violation(layer: Layer, k: int, limits: dict, bits: int) -> str | None:
    """The first per-core limit that an even split of the layer over k cores exceeds
    ("used > limit=value"), or None when it fits."""
    neurons, synapses, axons = chunk_loads(layer, chunk_starts(layer.neurons, k))
    checks = (("neurons_per_core", neurons), ("synapse_memory_bits_per_core", synapses * bits),
              ("input_axons_per_core", axons))
    for name, used in checks:
        if name in limits and used.max() > limits[name]:
            return f"{used.max()} > {name}={limits[name]}"
    return None


def fewest_cores(layer: Layer, limits: dict, bits: int, k: int) -> int:
    """Smallest even split at or above k that fits: double until it fits, then bisect down."""
    one = split_violation(layer, layer.neurons, limits, bits)
    if one is not None:  # even one neuron per core does not fit: no split can help
        raise ChipError(f"layer '{layer.name}': a single neuron exceeds a core ({one})")
    hi = max(k, 1)
    while split_violation(layer, min(hi, layer.neurons), limits, bits) is not None:
        hi *= 2
    hi, lo = min(hi, layer.neurons), max(k, 1)
    while lo < hi:  # fit is monotone in practice; the result is checked either way
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if split_violation(layer, mid, limits, bits) is None else (mid + 1, hi)
    return hi
