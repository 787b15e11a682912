"""The barrier term of latency: the chip-wide synchronisation that ends every time step on a mesh.

Davies et al. 2018 give its time over 1 to 32 tiles (`t_barrier_min` .. `t_barrier_max`); between
them it is interpolated linearly in the number of tiles, beyond 32 the 32-tile figure is used.
"""

from __future__ import annotations

import math

from spikestack.energy.operands import constant
from spikestack.energy.profile import ChipProfile

BARRIER_TILES = (1, 32)  # Davies et al. 2018 give barrier sync over 1..32 tiles (t_barrier_min.._max)


def barrier_seconds(profile: ChipProfile, cores: int, notes: list[str]) -> float | None:
    """Seconds of one step's barrier on `cores` cores, or None when the profile lacks either bound.
    Assumptions made (tiles taken as cores, tiles out of the published range) are added to `notes`."""
    lo, hi = constant(profile, "latency", "t_barrier_min"), constant(profile, "latency", "t_barrier_max")
    if lo is None or hi is None:
        return None
    per_tile = profile.limits.get("cores_per_tile")
    if per_tile is None:
        notes.append("barrier: one tile per core (the profile gives no cores_per_tile)")
    tiles = math.ceil(cores / (per_tile or 1))
    if tiles > BARRIER_TILES[1]:
        notes.append(f"barrier: {tiles} tiles is beyond the published 1-32 range: the 32-tile figure is used")
    tiles = min(max(tiles, BARRIER_TILES[0]), BARRIER_TILES[1])
    return lo + (hi - lo) * (tiles - BARRIER_TILES[0]) / (BARRIER_TILES[1] - BARRIER_TILES[0])
