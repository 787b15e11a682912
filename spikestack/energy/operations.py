"""The per-operation cost model of a mesh chip (Loihi-like): every synaptic event, neuron update and
spike message priced by the profile's constants, core by core.

Per time step t and sample b, each layer's counts are spread over its cores (neurons and spikes by the
core's share of the layer's neurons, synaptic events by its share of the synapses: activity inside a
layer is taken as uniform, since Counts are per node). Chip synaptic events are the `synaptic_events`
of the layer's weight ops (Affine, Linear, Conv): pooling and scaling fold into those synapses on a
chip, so their own counted events are not chip operations. Messages are spikes x destination cores,
hops the Manhattan distances to them (mesh.py). Two terms are chip-wide: the barrier that ends every
step (Davies et al. 2018 give its time over 1 to 32 tiles, `t_barrier_min` .. `t_barrier_max`;
between them it is interpolated linearly in the number of tiles, beyond 32 the 32-tile figure is
used) and static power x the time an inference takes.
"""

from __future__ import annotations

import math

import numpy as np

from spikestack.energy.budget import Budget, constant, per_inference, series, steps_and_batch
from spikestack.energy.layers import Layer
from spikestack.energy.placement import Placement
from spikestack.energy.profile import ChipProfile
from spikestack.ir.run import Counts

# term -> (energy constant, latency constant); hops cost energy per hop, their time is not in the table
TERMS = {
    "synaptic": ("e_syn_op", "t_syn_op"),
    "neuron_active": ("e_neuron_active", "t_neuron_active"),
    "neuron_inactive": ("e_neuron_inactive", "t_neuron_inactive"),
    "spike": ("e_spike_local", "t_spike_local"),
    "hop_ew": ("e_hop_ew", None),
    "hop_ns": ("e_hop_ns", None),
}


def _layer_operations(counts: Counts, layer: Layer, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """The layer's chip operations per step and sample: synaptic events, neuron updates, spikes out."""
    updates = series(counts, [layer.name], "neuron_updates", shape)
    active = series(counts, [layer.name], "active_neuron_updates", shape)
    return {"synaptic": series(counts, layer.weights, "synaptic_events", shape), "neuron_active": active,
            "neuron_inactive": updates - active, "spikes": series(counts, [layer.name], "spikes_out", shape)}


def estimate_mesh(counts: Counts, placement: Placement, profile: ChipProfile, dt: float | None) -> Budget:
    """Energy = sum of operations x their energy constants + static power x time; latency = the
    slowest core's time per step + the barrier."""
    shape = steps_and_batch(counts)
    budget = Budget(profile.name, "mesh", None, None, cores_used=placement.cores_used)
    e_const = {t: constant(profile, "energy", e) for t, (e, _) in TERMS.items()}
    t_const = {t: constant(profile, "latency", l) for t, (_, l) in TERMS.items() if l}
    energy = {t: np.zeros(shape) for t in TERMS}
    core_times, core_terms, missing = [], [], set()
    for name, layer in placement.layers.items():
        ops = _layer_operations(counts, layer, shape)
        cores = placement.cores_of(name)
        synapses = sum(c.synapses for c in cores)
        budget.per_layer[name] = {}
        for core in cores:
            fn = core.neurons / layer.neurons
            fs = core.synapses / synapses if synapses else fn
            spikes = ops["spikes"] * fn
            work = {"synaptic": ops["synaptic"] * fs, "neuron_active": ops["neuron_active"] * fn,
                    "neuron_inactive": ops["neuron_inactive"] * fn, "spike": spikes * core.messages_per_spike,
                    "hop_ew": spikes * core.hops_ew_per_spike, "hop_ns": spikes * core.hops_ns_per_spike}
            for term, amount in work.items():
                if e_const[term] is None:
                    missing |= {term} if amount.any() else set()
                    continue
                joules = amount * e_const[term]
                energy[term] += joules
                budget.per_layer[name][term] = budget.per_layer[name].get(term, 0.0) + per_inference(joules)
            times = {t: work[t] * c for t, c in t_const.items() if c is not None}
            core_terms.append(times)
            core_times.append(sum(times.values(), np.zeros(shape)))
    if any(c is not None for c in e_const.values()):
        budget.unknown += [f"{t}: profile '{profile.name}' has no '{TERMS[t][0]}'" for t in TERMS if t in missing]
    budget.energy_complete = not missing
    budget.notes.append("input spikes arrive from off the chip: they cost synaptic events, no spike or hop energy")
    _sum_energy(budget, energy, profile)
    _sum_latency(budget, core_times, core_terms, t_const, profile, placement)
    add_static_power(budget, profile, dt, shape)
    return budget


def _sum_energy(budget: Budget, energy: dict[str, np.ndarray], profile: ChipProfile) -> None:
    """Totals, per step and per sample, of the terms whose constant the profile has."""
    known = {t: a for t, a in energy.items() if constant(profile, "energy", TERMS[t][0]) is not None}
    if not known:
        budget.per_layer = {}
        budget.unknown.insert(0, f"energy: profile '{profile.name}' has no per-operation energy "
                                 f"(has: {', '.join(profile.energy) or 'nothing'})")
        return
    total = sum(known.values())
    budget.energy_terms = {t: per_inference(a) for t, a in known.items()}
    budget.energy_per_step, budget.energy_per_sample = total.mean(axis=1), total.sum(axis=0)
    budget.energy_j = float(budget.energy_per_sample.mean())


def _sum_latency(budget: Budget, core_times: list[np.ndarray], core_terms: list[dict[str, np.ndarray]],
                 t_const: dict[str, float | None], profile: ChipProfile, placement: Placement) -> None:
    """Each step takes as long as its slowest core plus the barrier; terms are read along that core."""
    barrier = barrier_seconds(profile, placement.cores_used, budget.notes)
    if not any(c is not None for c in t_const.values()) or not core_times:
        have = ", ".join(f"{k} = {c.value:g} {c.unit}" for k, c in profile.latency.items()) or "nothing"
        budget.unknown.append(f"latency: profile '{profile.name}' has no per-operation latency (has: {have})")
        return
    for term, c in t_const.items():
        if c is None:
            budget.latency_complete = False
            budget.unknown.append(f"{term} latency: profile '{profile.name}' has no '{TERMS[term][1]}'")
    stacked = np.stack(core_times)  # (cores, T, B)
    slowest = stacked.argmax(axis=0)[None]
    for term in t_const:
        if t_const[term] is not None:
            per_core = np.stack([times[term] for times in core_terms])
            budget.latency_terms[term] = per_inference(np.take_along_axis(per_core, slowest, 0)[0])
    step = stacked.max(axis=0)
    if barrier is None:
        budget.latency_complete = False
        budget.unknown.append(f"barrier: profile '{profile.name}' has no t_barrier_min/t_barrier_max")
    else:
        step = step + barrier
        budget.latency_terms["barrier"] = barrier * step.shape[0]
    budget.latency_per_step, budget.latency_per_sample = step.mean(axis=1), step.sum(axis=0)
    budget.latency_s = float(budget.latency_per_sample.mean())


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
