"""`Budget`: one chip's cost of one inference, as every cost model (mesh, Xylo, ANN) returns it; and the
operands every cost term multiplies: amounts read from a run's `Counts` (float (T, B) arrays, steps by
samples) and constants read from a chip profile (in SI units, or None when the profile lacks one)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from spikestack.energy.profile import ChipProfile
from spikestack.errors import ChipError
from spikestack.ir.run import Counts


@dataclass
class Budget:
    """One chip's cost of one inference (mean over the samples), its breakdowns and what is unknown."""

    chip: str
    model: str  # "mesh" | "xylo-cycles" | "ann"
    energy_j: float | None
    latency_s: float | None
    energy_terms: dict[str, float] = field(default_factory=dict)  # J per inference by term
    latency_terms: dict[str, float] = field(default_factory=dict)  # s per inference, along the slowest core
    cycle_terms: dict[str, float] = field(default_factory=dict)  # cycles per inference by term (Xylo)
    per_layer: dict[str, dict[str, float]] = field(default_factory=dict)  # layer -> term -> J per inference
    energy_per_step: np.ndarray | None = None  # (T,) J, mean over samples
    latency_per_step: np.ndarray | None = None  # (T,) s
    energy_per_sample: np.ndarray | None = None  # (B,) J per inference
    latency_per_sample: np.ndarray | None = None
    unknown: list[str] = field(default_factory=list)  # "term: why"
    notes: list[str] = field(default_factory=list)  # assumptions a reader must know
    extra: dict = field(default_factory=dict)  # model-specific figures (cycles, clocks, comparisons)
    cores_used: int = 0
    fit_checked: bool = True  # False: the profile gives no limits to check the placement against
    energy_complete: bool = True  # False: a term is unknown, so energy_j is a lower bound
    latency_complete: bool = True

    def shares(self, which: str = "energy") -> dict[str, float]:
        """Fraction of the known total per term, largest first: which constants dominate."""
        terms = getattr(self, f"{which}_terms")
        total = sum(terms.values())
        return {k: v / total for k, v in sorted(terms.items(), key=lambda kv: -kv[1])} if total > 0 else {}

    @property
    def dominant(self) -> str | None:
        """The term with the largest share: of energy where it has several terms, else of cycles."""
        for which in ("energy", "cycle", "latency"):
            if len(getattr(self, f"{which}_terms")) > 1:
                return next(iter(self.shares(which)))
        return next(iter(self.energy_terms), None)

    def to_dict(self) -> dict:
        def plain(v):
            return v.tolist() if isinstance(v, np.ndarray) else v

        out = {k: plain(v) for k, v in vars(self).items()}
        out.update({f"{w}_shares": self.shares(w) for w in ("energy", "latency", "cycle")}, dominant=self.dominant)
        return out


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
