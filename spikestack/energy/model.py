"""`estimate`: energy and latency of one inference on a chip, from `Counts` and a `Placement`.

A mesh chip (Loihi-like) is priced per operation (operations.py):

  energy  = events*E_syn + active*E_active + inactive*E_inactive + messages*E_spike
            + hops_ew*E_hop_ew + hops_ns*E_hop_ns + P_static*time            (static_power.py)
  latency = max over cores (events*t_syn + active*t_active + inactive*t_inactive + messages*t_spike)
            + barrier(tiles)                                                     (barrier.py)

Xylo (a profile with `cycles`) uses Rockpool's cycle model (xylo.py) and ANN baselines the arithmetic
counts (ann.py); all return the same `Budget` (budget.py). A term whose constant the profile lacks is
reported unknown, with the reason, never guessed. The names the cost models share stay importable
from here.
"""

from __future__ import annotations

from spikestack.energy.ann import estimate_ann
from spikestack.energy.barrier import BARRIER_TILES
from spikestack.energy.budget import Budget
from spikestack.energy.operands import constant, series, steps_and_batch
from spikestack.energy.operations import TERMS, estimate_mesh
from spikestack.energy.placement import Placement
from spikestack.energy.profile import ChipProfile
from spikestack.energy.xylo import XYLO_OPTIONAL, estimate_xylo
from spikestack.errors import ChipError
from spikestack.ir.run import Counts


def estimate(counts: Counts, placement: Placement, profile: ChipProfile, dt: float | None = None) -> Budget:
    """Energy and latency per inference of a run's counts on a placed chip. `dt`: seconds per step,
    needed only for static power and for chips that run in real time (Xylo)."""
    if placement.chip != profile.name:
        raise ChipError(f"placement is for chip '{placement.chip}', profile is '{profile.name}'")
    model = estimate_ann if profile.kind == "ann" else estimate_xylo if profile.cycles else estimate_mesh
    budget = model(counts, placement, profile, dt)
    budget.notes[:0] = list(placement.notes)
    budget.fit_checked = placement.checked or profile.kind == "ann"
    return budget


__all__ = ["BARRIER_TILES", "TERMS", "XYLO_OPTIONAL", "Budget", "constant", "estimate", "series", "steps_and_batch"]
