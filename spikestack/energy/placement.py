"""`Placement`: which cores hold which layer, what each core holds, and where cores sit on the mesh.

Cores sit row-major on a square-ish mesh of `mesh_grid` rows and columns, whichever chip placed them;
a spike's hops to another core are the Manhattan distance between their `mesh_position`s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spikestack.energy.layers import Layer


@dataclass(frozen=True)
class CoreLoad:
    """What one core holds and how its spikes leave it (per spike of one of its neurons, averaged)."""

    index: int
    layer: str
    position: tuple[int, int]  # (row, column) on the mesh
    neurons: int
    synapses: int
    synapse_bits: int
    input_axons: int
    output_axons: int = 0
    messages_per_spike: float = 0.0  # destination cores reached by one spike
    hops_ew_per_spike: float = 0.0  # east-west mesh hops summed over those messages
    hops_ns_per_spike: float = 0.0
    memory: dict = field(default_factory=dict)  # chip-specific usage (Speck's padded memories)


@dataclass(frozen=True)
class Placement:
    chip: str
    layers: dict[str, Layer]
    cores: tuple[CoreLoad, ...]
    grid: tuple[int, int]
    weight_bits: int | None
    notes: tuple[str, ...] = ()
    checked: bool = True  # False: the profile gives no per-core limits, so fitting was not checked

    @property
    def cores_used(self) -> int:
        return len({c.index for c in self.cores})  # Xylo's layers share its one core

    def cores_of(self, layer: str) -> tuple[CoreLoad, ...]:
        return tuple(c for c in self.cores if c.layer == layer)

    def to_dict(self) -> dict:
        core_fields = ("index", "layer", "position", "neurons", "synapses", "synapse_bits", "input_axons",
                       "output_axons", "messages_per_spike", "memory")
        return {
            "chip": self.chip, "cores_used": self.cores_used, "grid": list(self.grid), "weight_bits": self.weight_bits,
            "checked": self.checked,
            "layers": {n: {"neurons": l.neurons, "synapses": l.synapses, "cores": [c.index for c in self.cores_of(n)]}
                       for n, l in self.layers.items()},
            "cores": [{f: getattr(c, f) for f in core_fields} for c in self.cores],
            "notes": list(self.notes),
        }


def mesh_grid(cores: int) -> tuple[int, int]:
    """Rows and columns of the square-ish mesh that holds `cores` cores."""
    cols = max(1, math.ceil(math.sqrt(cores)))
    return max(1, math.ceil(cores / cols)), cols


def mesh_position(index: int | np.ndarray, grid: tuple[int, int]) -> tuple:
    """(row, column) of core `index` (an int, or an array of them) on a row-major mesh."""
    return index // grid[1], index % grid[1]
