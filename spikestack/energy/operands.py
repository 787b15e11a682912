"""What every cost term multiplies: amounts read from a run's `Counts` (float (T, B) arrays, steps by
samples) and constants read from a chip profile (in SI units, or None when the profile lacks one)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from spikestack.energy.profile import ChipProfile
from spikestack.errors import ChipError
from spikestack.ir.run import Counts


def steps_and_batch(counts: Counts) -> tuple[int, int]:
    """(T, B) of the run: the shape of every metric array in the counts."""
    for metrics in counts.per_node.values():
        for array in metrics.values():
            return tuple(np.shape(array))[:2]
    raise ChipError("counts are empty: simulate with count=True before estimating")


def series(counts: Counts, nodes: Iterable[str], metric: str, shape: tuple[int, int]) -> np.ndarray:
    """Sum of one metric over nodes, float (T, B); nodes missing from the counts add nothing."""
    total = np.zeros(shape)
    for node in nodes:
        if metric in counts.per_node.get(node, {}):
            total += counts.per_node[node][metric]
    return total


def per_inference(amount: np.ndarray) -> float:
    """A (T, B) amount summed over the steps of an inference, mean over the samples."""
    return float(amount.sum(axis=0).mean())


def constant(profile: ChipProfile, section: str, name: str | None) -> float | None:
    """A profile constant in SI units, or None when the profile lacks it (the term is then unknown)."""
    table = getattr(profile, section)
    return table[name].si if name in table else None
