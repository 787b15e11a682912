"""`Placement`: which cores hold which layer, what each core holds, and where cores sit on the mesh.

Cores are grouped into tiles of `cores_per_tile` consecutive cores (one core per tile when the profile
gives no tile size); tiles sit on a mesh of `mesh_grid` rows and columns (the profile's `mesh_rows`
tiles per column, else square-ish), numbered column by column as SANA-FE numbers Loihi's
(tile t at column t // rows, row t % rows), whichever chip placed them. A spike's message to a core
of its own tile makes no hop; to another tile, its hops are the Manhattan distance between the tiles'
`mesh_position`s: columns apart are east-west hops, rows apart north-south.
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
    position: tuple[int, int]  # (row, column) of its tile on the mesh
    neurons: int
    synapses: int
    synapse_bits: int
    input_axons: int
    output_axons: int = 0
    messages_per_spike: float = 0.0  # destination cores reached by one spike
    local_messages_per_spike: float = 0.0  # those of them in the core's own tile (no hop)
    hops_ew_per_spike: float = 0.0  # east-west mesh hops summed over those messages
    hops_ns_per_spike: float = 0.0
    route_hops: tuple[int, int] = (0, 0)  # (east-west, north-south) hops of its longest route
    received_per_spike: dict = field(default_factory=dict)  # source layer -> messages in per spike of it
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
    cores_per_tile: int = 1

    @property
    def tiles_used(self) -> int:
        return len({c.index // self.cores_per_tile for c in self.cores})

    @property
    def cores_used(self) -> int:
        return len({c.index for c in self.cores})  # Xylo's layers share its one core

    def cores_of(self, layer: str) -> tuple[CoreLoad, ...]:
        return tuple(c for c in self.cores if c.layer == layer)

    def to_dict(self) -> dict:
        core_fields = ("index", "layer", "position", "neurons", "synapses", "synapse_bits", "input_axons",
                       "output_axons", "messages_per_spike", "local_messages_per_spike", "route_hops", "memory")
        return {
            "chip": self.chip, "cores_used": self.cores_used, "grid": list(self.grid), "weight_bits": self.weight_bits,
            "checked": self.checked, "cores_per_tile": self.cores_per_tile, "tiles_used": self.tiles_used,
            "layers": {n: {"neurons": l.neurons, "synapses": l.synapses, "cores": [c.index for c in self.cores_of(n)]}
                       for n, l in self.layers.items()},
            "cores": [{f: getattr(c, f) for f in core_fields} for c in self.cores],
            "notes": list(self.notes),
        }


def mesh_grid(tiles: int, rows: int | None = None) -> tuple[int, int]:
    """Rows and columns of the mesh that holds `tiles` tiles: `rows` high when given, else square-ish."""
    rows = rows or max(1, math.ceil(math.sqrt(tiles)))
    return rows, max(1, math.ceil(tiles / rows))


def mesh_position(tile: int | np.ndarray, grid: tuple[int, int]) -> tuple:
    """(row, column) of tile `tile` (an int, or an array of them), tiles numbered column by column."""
    return tile % grid[0], tile // grid[0]
