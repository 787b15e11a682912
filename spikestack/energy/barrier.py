"""The barrier that ends every step of a mesh chip, as its profile gives it, over the tiles in use.

Two forms, as the two sources state them:

- a range, `t_barrier_min` .. `t_barrier_max` over 1 to 32 tiles (Davies et al. 2018 give Loihi's
  barrier as 113-465 ns for 1-32 tiles, nothing in between): interpolated linearly in the number of
  tiles, the 32-tile figure beyond 32 (our assumption, said in the notes);
- a table, `t_barrier_tiles_<n>` for some tile counts n (SANA-FE's `latency_sync` table): a step
  function, the entry of the largest n at or below the tiles in use (the first entry below the
  smallest n), as SANA-FE looks it up (utils.hpp, `LookupTable`).

Tiles in use are the tiles holding any placed core, inputs on cores included.
"""

from __future__ import annotations

import re

from spikestack.energy.budget import constant
from spikestack.energy.profile import ChipProfile

BARRIER_TILES = (1, 32)  # Davies et al. 2018 give barrier sync over 1..32 tiles (t_barrier_min.._max)
_TABLE = re.compile(r"^t_barrier_tiles_(\d+)$")


def barrier_table(profile: ChipProfile) -> dict[int, float]:
    """{tiles: seconds} of the profile's `t_barrier_tiles_<n>` entries (empty when it has none)."""
    table = {}
    for name in profile.latency:
        match = _TABLE.match(name)
        if match:
            table[int(match.group(1))] = constant(profile, "latency", name)
    return dict(sorted(table.items()))


def barrier_seconds(profile: ChipProfile, tiles: int, notes: list[str]) -> float | None:
    """Seconds of one step's barrier over `tiles` tiles in use, or None when the profile gives no
    barrier. Assumptions made (tiles taken as cores, tiles out of the published range) go to `notes`."""
    if "cores_per_tile" not in profile.limits:
        notes.append("barrier: one tile per core (the profile gives no cores_per_tile)")
    table = barrier_table(profile)
    if table:
        at_or_below = [n for n in table if n <= tiles]
        return table[at_or_below[-1]] if at_or_below else next(iter(table.values()))
    lo, hi = constant(profile, "latency", "t_barrier_min"), constant(profile, "latency", "t_barrier_max")
    if lo is None or hi is None:
        return None
    if tiles > BARRIER_TILES[1]:
        notes.append(f"barrier: {tiles} tiles is beyond the published 1-32 range: the 32-tile figure is used")
    tiles = min(max(tiles, BARRIER_TILES[0]), BARRIER_TILES[1])
    return lo + (hi - lo) * (tiles - BARRIER_TILES[0]) / (BARRIER_TILES[1] - BARRIER_TILES[0])
