"""`Run` and `Counts`: what every executor returns, so the energy model reads one type.

Counts are per node, per metric, an array shaped (T, B): per time step and per sample. Metric names
are a contract (docs/architecture.md, "Run and Counts"); the energy model reads only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METRICS = (
    "spikes_in",  # events arriving at the node
    "spikes_out",  # events leaving the node
    "synaptic_events",  # spike count x structural fan-out (zero weights count; k spikes cost k): Sinabs synops
    "effective_acs",  # nonzero weights reached by binary input: NeuroBench Effective_ACs
    "effective_macs",  # nonzero weights reached by non-binary input: NeuroBench Effective_MACs
    "dense_macs",  # every weight x every input, as an ANN would do: NeuroBench Dense
    "neuron_updates",  # state updates
    "active_neuron_updates",  # updates of neurons that received input or spiked
)


@dataclass
class Counts:
    """per_node[node][metric] -> int64 array (T, B)."""

    per_node: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def total(self, metric: str, node: str | None = None) -> int:
        nodes = [node] if node is not None else list(self.per_node)
        return int(sum(self.per_node[n][metric].sum() for n in nodes if metric in self.per_node[n]))

    def per_sample(self, metric: str) -> np.ndarray:
        """Sum over nodes and time: one value per sample (B,)."""
        arrays = [m[metric].sum(axis=0) for m in self.per_node.values() if metric in m]
        return np.sum(arrays, axis=0) if arrays else np.zeros(0, dtype=np.int64)

    def to_dict(self) -> dict:
        """JSON-ready: per node, per metric, total and per time step (summed over the batch)."""
        return {
            node: {metric: {"total": int(a.sum()), "per_step": a.sum(axis=1).astype(int).tolist()} for metric, a in m.items()}
            for node, m in self.per_node.items()
        }


@dataclass
class Run:
    """Outputs (T, B, *shape) per Output node, recordings by node name, and the counts."""

    outputs: dict[str, np.ndarray]
    recordings: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # node -> {"v"|"i"|"s": (T, B, *shape)}
    counts: Counts | None = None
    backend: str = ""
    mode: str = ""

    @property
    def output(self) -> np.ndarray:
        """The single output, for graphs with one Output node."""
        if len(self.outputs) != 1:
            raise ValueError(f"graph has {len(self.outputs)} outputs: use .outputs[name]")
        return next(iter(self.outputs.values()))
