"""Xylo: placement and cost model. Xylo Audio 2 is one core with fixed neuron pools: up to 16 input
channels, 1000 hidden neurons (every layer that does not feed the output, recurrent or not) and 8 output
neurons (Rockpool's mapper and dev-kit readers); a network fits when each pool holds its share.
It runs in real time at the clock a network needs, so energy is its published dynamic inference power x
run time, and Rockpool's syns61201 cycle model gives that clock and splits the energy over layers."""

from __future__ import annotations

import numpy as np

from spikestack.energy.budget import Budget, constant, per_inference, series, steps_and_batch
from spikestack.energy.layers import Layer, network_inputs
from spikestack.energy.placement import CoreLoad, Placement
from spikestack.energy.profile import ChipProfile
from spikestack.ir.run import Counts

# Rockpool's cycle terms that the brief does not quote; used when a profile adds them under these names.
XYLO_OPTIONAL = {"input_channel": "1 per input channel", "hidden_isyn_neuron": "3 per hidden neuron",
                 "output_isyn_spike": "1 per hidden spike (readout loop)",
                 "hidden_neuron_spike": "3 per hidden spike (spike loop, no aliases)"}


XYLO_POOLS = ("input_channels", "hidden_neurons", "output_neurons")  # the limits that make a profile Xylo's


def place_xylo(profile: ChipProfile, layers: dict[str, Layer], bits: int, problems: list[str]):
    """(cores, grid, notes): every layer on Xylo's one core, in the pool its place in the network sets.
    Each pool that overflows is added to `problems`, naming the layers in it."""
    inputs = network_inputs(layers)
    pools = {"input_channels": (sum(inputs.values()), list(inputs)),
             "hidden_neurons": (sum(l.neurons for l in layers.values() if not l.feeds_output),
                                [n for n, l in layers.items() if not l.feeds_output]),
             "output_neurons": (sum(l.neurons for l in layers.values() if l.feeds_output),
                                [n for n, l in layers.items() if l.feeds_output])}
    for limit, (used, names) in pools.items():
        if limit in profile.limits and used > profile.limits[limit]:
            what = "input" if limit == "input_channels" else "layer"
            problems.append(f"{what}{'s' if len(names) > 1 else ''} {', '.join(repr(n) for n in names)}: "
                            f"{used} > {limit}={profile.limits[limit]}")
    cores = tuple(CoreLoad(0, name, (0, 0), l.neurons, l.synapses, l.synapses * bits,
                           sum(m.shape[1] for m in l.inputs.values())) for name, l in layers.items())
    used = ", ".join(f"{pools[k][0]} of {profile.limits[k]} {k.replace('_', ' ')}" for k in XYLO_POOLS
                     if k in profile.limits)
    return cores, (1, 1), [f"Xylo: one core; {used}"]


def xylo_cycles(counts: Counts, placement: Placement, cyc: dict[str, float],
                shape: tuple[int, int]) -> dict[str, dict[str, np.ndarray]]:
    """Cycles per step of Rockpool's syns61201 `cycles_model`, per layer and term, from the run's spikes.
    Rockpool takes firing probabilities (any events in a bin count once) and the mean fan-out of the
    non-zero recurrent weights; we take spike counts and each hidden layer's structural fan-out, which
    give the same sum when fan-out is uniform and weights are dense."""
    layers = placement.layers
    hidden = {n: l for n, l in layers.items() if not l.feeds_output}
    n_out = sum(l.neurons for l in layers.values() if l.feeds_output)
    inputs = network_inputs(layers)
    in_spk = series(counts, inputs, "spikes_out", shape)
    ones, c = np.ones(shape), (lambda name: cyc.get(name, 0.0))
    cycles = {}
    if c("input_channel"):
        cycles["(input)"] = {"input_channel": ones * sum(inputs.values()) * c("input_channel")}
    for name, layer in layers.items():
        n = layer.neurons
        if layer.feeds_output:
            cycles[name] = {"output_neuron": ones * n * c("output_neuron")}
            continue
        spk = series(counts, [name], "spikes_out", shape)
        fan_out = sum(h.inputs[name].nnz for h in hidden.values() if name in h.inputs) / n
        cycles[name] = {
            "input_event_loop": in_spk * n * c("input_event_loop"),
            "hidden_syn_update": spk * fan_out * c("hidden_syn_update"),
            "output_syn_update": spk * n_out * c("output_syn_update"),
            "hidden_neuron": ones * n * c("hidden_neuron"),
            "hidden_isyn_neuron": ones * n * c("hidden_isyn_neuron"),
            "output_isyn_spike": spk * c("output_isyn_spike"),
            "hidden_neuron_spike": spk * c("hidden_neuron_spike"),
        }
    return cycles


def estimate_xylo(counts: Counts, placement: Placement, profile: ChipProfile, dt: float | None) -> Budget:
    """Xylo runs in real time: energy = published dynamic inference power x T*dt, latency = T*dt; the
    cycle model gives the clock a network needs, clock = cycles * (1 + margin) / dt (est_clock_freq)."""
    shape = steps_and_batch(counts)
    cyc = {k: v.value for k, v in profile.cycles.items()}
    budget = Budget(profile.name, "xylo-cycles", None, None, cores_used=placement.cores_used)
    missing = [f"{k} ({why})" for k, why in XYLO_OPTIONAL.items() if k not in cyc]
    if missing:
        budget.notes.append("Rockpool's cycle model also counts " + ", ".join(missing) + f"; profile "
                            f"'{profile.name}' lacks them, so they are left out")
    per_layer = xylo_cycles(counts, placement, cyc, shape)
    total = sum(sum(terms.values()) for terms in per_layer.values())
    for terms in per_layer.values():
        for term, a in terms.items():
            budget.cycle_terms[term] = budget.cycle_terms.get(term, 0.0) + per_inference(a)
    budget.cycle_terms = {k: v for k, v in budget.cycle_terms.items() if v}
    margin = cyc.get("clock_margin", 0.0)
    budget.extra = {"cycles_per_step_mean": float(total.mean()), "cycles_per_step_max": float(total.max())}
    power = constant(profile, "energy", "p_dynamic_inference")
    if dt is None or power is None:
        why = "needs dt (seconds per step)" if dt is None else "profile has no 'p_dynamic_inference'"
        budget.unknown += [f"energy: Xylo's energy is its dynamic power x run time: {why}",
                           f"latency: Xylo runs in real time, T x dt: {why}"]
        return budget
    budget.extra["clock_hz_needed"] = float(total.max()) * (1 + margin) / dt
    budget.energy_j, budget.latency_s = power * shape[0] * dt, shape[0] * dt
    budget.energy_terms, budget.latency_terms = {"dynamic_power": budget.energy_j}, {"real_time": budget.latency_s}
    budget.energy_per_step, budget.latency_per_step = np.full(shape[0], power * dt), np.full(shape[0], dt)
    budget.energy_per_sample = np.full(shape[1], budget.energy_j)
    budget.latency_per_sample = np.full(shape[1], budget.latency_s)
    cycles_total = per_inference(total) or 1.0
    budget.per_layer = {n: {"dynamic_power": budget.energy_j * per_inference(sum(t.values())) / cycles_total}
                        for n, t in per_layer.items()}
    budget.notes.append("Xylo: energy split over layers in proportion to their cycles")
    budget.notes += [f"for scale, {k} = {c.value:g} {c.unit} ({c.source})" for k, c in profile.energy.items()
                     if k != "p_dynamic_inference"]
    return budget
