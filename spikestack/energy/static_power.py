"""The static term of energy: static power x the time an inference takes."""

from __future__ import annotations

from spikestack.energy.budget import Budget
from spikestack.energy.operands import constant
from spikestack.energy.profile import ChipProfile


def add_static_power(budget: Budget, profile: ChipProfile, dt: float | None, shape: tuple[int, int]) -> None:
    """Add static power x time to the budget's energy: the time is T*dt when dt (seconds per step) is
    given, else the latency. Unknown (and the energy a lower bound) without p_static or a time."""
    power = constant(profile, "energy", "p_static")
    if budget.energy_j is None:
        return  # the energy is unknown as a whole: already said
    seconds = shape[0] * dt if dt is not None else budget.latency_s
    if power is None or seconds is None:
        budget.energy_complete = False
        budget.unknown.append(f"static: profile '{profile.name}' has no static power 'p_static'" if power is None
                              else "static: needs dt (seconds per step) or a known latency")
        return
    if dt is None and not budget.latency_complete:  # static power over a lower-bound time: a lower bound
        budget.energy_complete = False
        budget.notes.append("static: time is the latency, itself a lower bound (some latency terms unknown)")
    budget.energy_terms["static"] = power * seconds
    budget.energy_j += power * seconds
    budget.energy_per_sample = budget.energy_per_sample + power * seconds
    budget.energy_per_step = budget.energy_per_step + power * seconds / shape[0]
