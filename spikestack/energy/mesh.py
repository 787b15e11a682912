"""Placement on a Loihi-like mesh: every layer split over the fewest cores that respect every
per-core limit the profile gives (allocation.py), cores row-major on a square-ish mesh, and each
spike's messages and hops to the cores of the layers it feeds.

Output axons are (neuron, destination core) pairs, so they are known only once the consumers are
laid out: a layer whose cores send too many is widened and the whole mesh laid out again.
"""

from __future__ import annotations

import math

import numpy as np

from spikestack.energy.allocation import chunk_loads, chunk_starts, fewest_cores
from spikestack.energy.layers import Layer, presynaptic_neurons
from spikestack.energy.placement import CoreLoad, mesh_grid, mesh_position
from spikestack.energy.profile import ChipProfile
from spikestack.errors import ChipError

PER_CORE = ("neurons_per_core", "synapse_memory_bits_per_core", "input_axons_per_core", "output_axons_per_core")


def _route_spikes(layers: dict[str, Layer], cores: list[dict], grid: tuple[int, int]) -> None:
    """Fill each core's output axons and per-spike messages and hops from the consumers' placement."""
    core_of = {}  # layer -> global core index of each of its neurons
    for c in cores:
        core_of.setdefault(c["layer"], np.zeros(layers[c["layer"]].neurons, np.int64))[c["lo"]:c["hi"]] = c["index"]
    per_neuron = {n: np.zeros((3, l.neurons)) for n, l in layers.items()}  # messages, ew hops, ns hops
    for name, layer in layers.items():
        for source, matrix in layer.inputs.items():
            if source not in layers:
                continue  # an Input: its spikes come from off the chip
            for dest in (c for c in cores if c["layer"] == name):  # one output axon per (neuron, core)
                pre = presynaptic_neurons(matrix, dest["lo"], dest["hi"])
                row, col = mesh_position(core_of[source][pre], grid)
                per_neuron[source][:, pre] += [np.ones(len(pre)), np.abs(col - dest["position"][1]),
                                               np.abs(row - dest["position"][0])]
    for c in cores:
        load = per_neuron[c["layer"]][:, c["lo"]:c["hi"]].sum(axis=1)
        c["output_axons"] = int(load[0])
        c.update(messages_per_spike=load[0] / c["neurons"], hops_ew_per_spike=load[1] / c["neurons"],
                 hops_ns_per_spike=load[2] / c["neurons"])


def _lay_out(layers: dict[str, Layer], splits: dict[str, int], bits: int, grid: tuple[int, int]) -> list[dict]:
    """Cores in layer order, each layer split evenly over splits[layer] cores, with their routes."""
    cores = []
    for name, layer in layers.items():
        starts = chunk_starts(layer.neurons, splits[name])
        neurons, synapses, axons = chunk_loads(layer, starts)
        for lo, n, s, a in zip(starts, neurons, synapses, axons):
            i = len(cores)
            cores.append(dict(index=i, layer=name, position=mesh_position(i, grid), lo=int(lo), hi=int(lo + n),
                              neurons=int(n), synapses=int(s), synapse_bits=int(s) * bits, input_axons=int(a)))
    _route_spikes(layers, cores, grid)
    return cores


def place_mesh(profile: ChipProfile, layers: dict[str, Layer], bits: int, problems: list[str]):
    """(cores, grid, notes) of the layers on a mesh chip; every limit exceeded is added to `problems`."""
    limits = {k: profile.limits[k] for k in PER_CORE if k in profile.limits}
    notes = [] if limits else [f"profile '{profile.name}' gives no per-core limits: one core per layer, "
                               "fit not checked"]
    splits = {}
    for name, layer in layers.items():
        need = [math.ceil(layer.neurons / limits.get("neurons_per_core", layer.neurons or 1))]
        if "synapse_memory_bits_per_core" in limits:
            need.append(math.ceil(layer.synapses * bits / max(limits["synapse_memory_bits_per_core"], 1)))
        try:
            splits[name] = fewest_cores(layer, limits, bits, max(need)) if limits else 1
        except ChipError as exc:
            problems.append(str(exc))
            splits[name] = min(max(need), layer.neurons)  # one neuron per core at most: lay out and go on
    grid = mesh_grid(profile.limits.get("cores", sum(splits.values())))
    out_limit = limits.get("output_axons_per_core")
    while True:  # output axons depend on where the consumers sit: widen a layer until its cores fit
        cores = _lay_out(layers, splits, bits, grid)
        worst: dict[str, int] = {}
        for c in cores:
            if out_limit is not None and c["output_axons"] > out_limit:
                worst[c["layer"]] = max(worst.get(c["layer"], 0), c["output_axons"])
        grow = {n: used for n, used in worst.items() if splits[n] < layers[n].neurons}
        for name in set(worst) - set(grow):
            problems.append(f"layer '{name}': one neuron reaches more than output_axons_per_core={out_limit} cores")
        if not grow:
            break
        for name, used in grow.items():  # axons scale with neurons per core: jump close to the fit
            splits[name] = min(layers[name].neurons, max(splits[name] + 1, math.ceil(splits[name] * used / out_limit)))
    _check_chip(profile, layers, splits, cores, problems)
    keep = set(CoreLoad.__dataclass_fields__)
    return tuple(CoreLoad(**{k: v for k, v in c.items() if k in keep}) for c in cores), grid, notes


def _check_chip(profile: ChipProfile, layers: dict[str, Layer], splits: dict[str, int], cores: list[dict],
                problems: list[str]) -> None:
    """Chip-wide limits, and every core's final load (widening for output axons re-split the layer)."""
    total, limits = 0, profile.limits
    for c in cores:
        for name, used in (("neurons_per_core", c["neurons"]), ("synapse_memory_bits_per_core", c["synapse_bits"]),
                           ("input_axons_per_core", c["input_axons"])):
            if name in limits and used > limits[name] and f"layer '{c['layer']}'" not in " ".join(problems):
                problems.append(f"layer '{c['layer']}': core {c['index']} holds {used} > {name}={limits[name]}")
    for name, k in splits.items():
        total += k
        if "cores" in limits and total > limits["cores"] and total - k <= limits["cores"]:
            problems.append(f"layer '{name}': needs cores up to #{total}, over cores={limits['cores']} "
                            f"(the network needs {sum(splits.values())})")
    for limit, used in (("neurons_per_chip", sum(l.neurons for l in layers.values())),
                        ("synapses_per_chip", sum(l.synapses for l in layers.values()))):
        if limit in limits and used > limits[limit]:
            problems.append(f"network: {used} > {limit}={limits[limit]}")
