"""`Budget`: one chip's cost of one inference, as every cost model (mesh, Xylo, ANN) returns it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
