"""The per-operation cost model of a mesh chip (Loihi-like): every synaptic event, neuron update and
spike message priced by the profile's constants, core by core.

Per time step t and sample b, each layer's counts are spread over its cores (neurons and spikes by the
core's share of the layer's neurons, synaptic events by its share of the synapses: activity inside a
layer is taken as uniform, since Counts are per node). Chip synaptic events are the `synaptic_events`
of the layer's weight ops (Affine, Linear, Conv): pooling and scaling fold into those synapses on a
chip, so their own counted events are not chip operations. A spike sends one message per destination
core (mesh.py); messages within the sender's tile cost `e_spike_local`, messages to another tile cost
their hops. Terms a profile may add (SANA-FE's Loihi has them): `e_spike_out` per spike fired,
`e_message` per message sent (any destination), `t_message_in` per message received, and
`e_syn_op_conv` for convolutions' synaptic events. A term whose constant the profile lacks is
unknown, unless it is one of those optional ones (the profile then prices it inside another term).

Latency per step: the slowest core's time, plus the transit of the longest route a spike took that
step (hops x hop latencies), plus the barrier over the tiles in use (barrier.py). A core receives
(messages in, synaptic events) and sends (neuron updates, spikes, messages out) on two timelines that
overlap, as SANA-FE models Loihi's cores (its authors calibrated that model against the chip): its
time is the longer of the two. Static power x the time of an inference is added last.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from spikestack.energy.barrier import barrier_seconds
from spikestack.energy.budget import Budget, constant, per_inference, series, steps_and_batch
from spikestack.energy.layers import Layer
from spikestack.energy.placement import Placement
from spikestack.energy.profile import ChipProfile
from spikestack.ir.run import Counts

# term -> (energy constant, latency constant). Hop latencies are transit, not a core's work: see _transit.
TERMS = {
    "synaptic": ("e_syn_op", "t_syn_op"),
    "synaptic_conv": ("e_syn_op_conv", "t_syn_op_conv"),
    "neuron_active": ("e_neuron_active", "t_neuron_active"),
    "neuron_inactive": ("e_neuron_inactive", "t_neuron_inactive"),
    "spike_out": ("e_spike_out", "t_spike_out"),
    "spike": ("e_spike_local", "t_spike_local"),
    "message": ("e_message", "t_message_out"),
    "message_in": (None, "t_message_in"),
    "hop_ew": ("e_hop_ew", None),
    "hop_ns": ("e_hop_ns", None),
}
OPTIONAL = ("synaptic_conv", "spike_out", "message", "message_in")  # absent: priced inside another term
RECEIVING = ("synaptic", "synaptic_conv", "message_in")  # a core's receive timeline; the rest is its send one


def _layer_operations(counts: Counts, layer: Layer, shape: tuple[int, int], conv_apart: bool) -> dict[str, np.ndarray]:
    """The layer's chip operations per step and sample: synaptic events (those of its conv weight ops
    apart when `conv_apart`), neuron updates, spikes out."""
    updates = series(counts, [layer.name], "neuron_updates", shape)
    active = series(counts, [layer.name], "active_neuron_updates", shape)
    conv = layer.conv_weights if conv_apart else ()
    return {"synaptic": series(counts, [w for w in layer.weights if w not in conv], "synaptic_events", shape),
            "synaptic_conv": series(counts, conv, "synaptic_events", shape),
            "neuron_active": active, "neuron_inactive": updates - active,
            "spikes": series(counts, [layer.name], "spikes_out", shape)}


def _core_work(ops: dict[str, np.ndarray], spikes_of: dict[str, np.ndarray], core, fn: float, fs: float,
               fk: float, source: bool) -> dict:
    """One core's operations per step and sample, by term: fn, fs and fk are its shares of the layer's
    neurons, synapses and spikes. `source`: the core holds input spike sources (inputs on cores), which
    send messages but fire no neuron."""
    spikes = ops["spikes"] * fk
    received = sum((spikes_of[src] * share for src, share in core.received_per_spike.items()), 0.0)
    return {"synaptic": ops["synaptic"] * fs, "synaptic_conv": ops["synaptic_conv"] * fs,
            "neuron_active": ops["neuron_active"] * fn, "neuron_inactive": ops["neuron_inactive"] * fn,
            "spike_out": spikes * (not source), "spike": spikes * core.local_messages_per_spike,
            "message": spikes * core.messages_per_spike, "message_in": received + np.zeros_like(spikes),
            "hop_ew": spikes * core.hops_ew_per_spike, "hop_ns": spikes * core.hops_ns_per_spike}


def _prices(profile: ChipProfile, section: int, conv_apart: bool) -> dict[str, float | None]:
    """Each term's constant (section 0: energy, 1: latency); "synaptic_conv" only when convolutions are
    priced apart, falling back to the plain synaptic constant for a section that has no conv one."""
    name = "energy" if section == 0 else "latency"
    prices = {t: constant(profile, name, c[section]) if c[section] else None for t, c in TERMS.items()}
    if not conv_apart:
        del prices["synaptic_conv"]
    elif prices["synaptic_conv"] is None:
        prices["synaptic_conv"] = prices["synaptic"]
    return prices


def _spike_shares(placement: Placement, name: str, activity: Mapping[str, np.ndarray] | None) -> list[float]:
    """Each of the layer's cores' share of its spikes: from `activity` (spikes per neuron, summed over
    the run) when given for the layer, else its share of the neurons (activity taken as uniform)."""
    cores, layer = placement.cores_of(name), placement.layers[name]
    spikes = None if activity is None or name not in activity else np.asarray(activity[name], float).reshape(-1)
    if spikes is None or spikes.size != layer.neurons or spikes.sum() <= 0:
        return [c.neurons / layer.neurons for c in cores]
    bounds = np.cumsum([0] + [c.neurons for c in cores])
    return [float(spikes[lo:hi].sum() / spikes.sum()) for lo, hi in zip(bounds[:-1], bounds[1:])]


def estimate_mesh(counts: Counts, placement: Placement, profile: ChipProfile, dt: float | None,
                  activity: Mapping[str, np.ndarray] | None = None) -> Budget:
    """Energy = sum of operations x their energy constants + static power x time; latency = the
    slowest core's time per step + the longest route's transit + the barrier. `activity`: spikes per
    neuron of some layers (flat, summed over the run), to share their spikes among their cores."""
    shape = steps_and_batch(counts)
    budget = Budget(profile.name, "mesh", None, None, cores_used=placement.cores_used)
    conv_apart = "e_syn_op_conv" in profile.energy or "t_syn_op_conv" in profile.latency
    e_const, t_const = _prices(profile, 0, conv_apart), _prices(profile, 1, conv_apart)
    optional = set(OPTIONAL) | ({"spike"} if e_const["message"] is not None else set())
    energy = {t: np.zeros(shape) for t in e_const if TERMS[t][0]}
    core_work, missing = [], set()
    ops_of = {name: _layer_operations(counts, layer, shape, conv_apart) for name, layer in placement.layers.items()}
    spikes_of = {name: ops["spikes"] for name, ops in ops_of.items()}
    for name, layer in placement.layers.items():
        cores = placement.cores_of(name)
        synapses = sum(c.synapses for c in cores)
        budget.per_layer[name] = {}
        for core, fk in zip(cores, _spike_shares(placement, name, activity)):
            fn = core.neurons / layer.neurons
            work = _core_work(ops_of[name], spikes_of, core, fn, core.synapses / synapses if synapses else fn, fk,
                              layer.kind == "input")
            core_work.append((core, work))
            for term in energy:
                if e_const[term] is None:
                    missing |= {term} if work[term].any() and term not in optional else set()
                    continue
                joules = work[term] * e_const[term]
                energy[term] += joules
                budget.per_layer[name][term] = budget.per_layer[name].get(term, 0.0) + per_inference(joules)
    if any(c is not None for c in e_const.values()):
        budget.unknown += [f"{t}: profile '{profile.name}' has no '{TERMS[t][0]}'" for t in TERMS if t in missing]
    budget.energy_complete = not missing
    if not any(layer.kind == "input" for layer in placement.layers.values()):
        budget.notes.append("input spikes arrive from off the chip: they cost synaptic events, no message or hop")
    _sum_energy(budget, energy, e_const, profile)
    _sum_latency(budget, core_work, t_const, optional, profile, placement)
    add_static_power(budget, profile, dt, shape)
    return budget


def _sum_energy(budget: Budget, energy: dict[str, np.ndarray], e_const: dict, profile: ChipProfile) -> None:
    """Totals, per step and per sample, of the terms whose constant the profile has."""
    known = {t: a for t, a in energy.items() if e_const[t] is not None}
    if not known:
        budget.per_layer = {}
        budget.unknown.insert(0, f"energy: profile '{profile.name}' has no per-operation energy "
                                 f"(has: {', '.join(profile.energy) or 'nothing'})")
        return
    total = sum(known.values())
    budget.energy_terms = {t: per_inference(a) for t, a in known.items()}
    budget.energy_per_step, budget.energy_per_sample = total.mean(axis=1), total.sum(axis=0)
    budget.energy_j = float(budget.energy_per_sample.mean())


def _transit(core_work: list, profile: ChipProfile, shape: tuple[int, int]) -> np.ndarray | None:
    """Per step and sample, the longest route's hop latency among the cores that sent a message; None
    when a route crosses tiles and the profile has no hop latency."""
    t_ew, t_ns = constant(profile, "latency", "t_hop_ew"), constant(profile, "latency", "t_hop_ns")
    transit = np.zeros(shape)
    for core, work in core_work:
        ew, ns = core.route_hops
        if ew + ns == 0:
            continue
        if (ew and t_ew is None) or (ns and t_ns is None):
            return None
        transit = np.maximum(transit, np.where(work["message"] > 0, ew * (t_ew or 0.0) + ns * (t_ns or 0.0), 0.0))
    return transit


def _sum_latency(budget: Budget, core_work: list, t_const: dict, optional: set, profile: ChipProfile,
                 placement: Placement) -> None:
    """Each step takes as long as its slowest core, the longest transit and the barrier; the terms
    are read along the slowest core."""
    serial = {t: c for t, c in t_const.items() if TERMS[t][1]}
    if not any(c is not None for c in serial.values()) or not core_work:
        have = ", ".join(f"{k} = {c.value:g} {c.unit}" for k, c in profile.latency.items()) or "nothing"
        budget.unknown.append(f"latency: profile '{profile.name}' has no per-operation latency (has: {have})")
        return
    for term, c in serial.items():
        if c is None and term not in optional and any(w[term].any() for _, w in core_work):
            budget.latency_complete = False
            budget.unknown.append(f"{term} latency: profile '{profile.name}' has no '{TERMS[term][1]}'")
    known = [t for t, c in serial.items() if c is not None]
    per_core = {t: np.stack([w[t] * serial[t] for _, w in core_work]) for t in known}  # (cores, T, B)
    zero = np.zeros_like(next(iter(per_core.values())))
    receive = sum((per_core[t] for t in known if t in RECEIVING), zero)
    send = sum((per_core[t] for t in known if t not in RECEIVING), zero)
    stacked = np.maximum(receive, send)
    slowest = stacked.argmax(axis=0)[None]
    for term in known:  # along the slowest core's longer timeline, so that the terms add up to its time
        bound = (receive >= send) if term in RECEIVING else (send > receive)
        budget.latency_terms[term] = per_inference(np.take_along_axis(per_core[term] * bound, slowest, 0)[0])
    step = stacked.max(axis=0)
    transit = _transit(core_work, profile, step.shape)
    if transit is None:
        budget.latency_complete = False
        budget.unknown.append(f"network latency: profile '{profile.name}' has no t_hop_ew/t_hop_ns")
    elif transit.any():
        step = step + transit
        budget.latency_terms["network"] = per_inference(transit)
    barrier = barrier_seconds(profile, placement.tiles_used, budget.notes)
    if barrier is None:
        budget.latency_complete = False
        budget.unknown.append(f"barrier: profile '{profile.name}' has no t_barrier_min/t_barrier_max")
    else:
        step = step + barrier
        budget.latency_terms["barrier"] = barrier * step.shape[0]
    budget.latency_per_step, budget.latency_per_sample = step.mean(axis=1), step.sum(axis=0)
    budget.latency_s = float(budget.latency_per_sample.mean())


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
