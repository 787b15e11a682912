"""Placement on a Loihi-like mesh: every layer split over the fewest cores that respect every
per-core limit the profile gives (allocation.py), consecutive cores grouped in tiles of the profile's
`cores_per_tile`, tiles column by column on a mesh `mesh_rows` high (placement.py), and each spike's
messages to the cores of the layers it feeds: within its tile (no hop) or across the mesh (hops).
A profile with `inputs_on_cores` (SANA-FE's Loihi, whose input neurons are spike sources on cores) gets
the network's inputs placed first, on cores of their own, so that their spikes cost messages and hops
like any layer's; otherwise inputs arrive from off the chip.

Output axons are (neuron, destination core) pairs, so they are known only once the consumers are
laid out: a layer whose cores send too many is widened and the whole mesh laid out again.
"""

from __future__ import annotations

import math

import numpy as np

from spikestack.energy.allocation import chunk_loads, chunk_starts, fewest_cores
from spikestack.energy.layers import Layer, network_inputs, presynaptic_neurons
from spikestack.energy.placement import CoreLoad, mesh_grid, mesh_position
from spikestack.energy.profile import ChipProfile
from spikestack.errors import ChipError

PER_CORE = ("neurons_per_core", "synapse_memory_bits_per_core", "input_axons_per_core", "output_axons_per_core")


def input_layers(layers: dict[str, Layer]) -> dict[str, Layer]:
    """The network's inputs as layers of spike sources with no synapses of their own, to place on cores."""
    return {s: Layer(s, "input", n, (s,), (), {}, False, False) for s, n in network_inputs(layers).items()}


def _route_spikes(layers: dict[str, Layer], cores: list[dict], grid: tuple[int, int], per_tile: int) -> None:
    """Fill each core's output axons, per-spike messages (all, and those within its tile), hops, and
    longest route from the consumers' placement."""
    core_of = {}  # layer -> global core index of each of its neurons
    for c in cores:
        core_of.setdefault(c["layer"], np.zeros(layers[c["layer"]].neurons, np.int64))[c["lo"]:c["hi"]] = c["index"]
    # per neuron: messages, messages within its tile, ew hops, ns hops; and its longest route's hops
    per_neuron = {n: np.zeros((4, l.neurons)) for n, l in layers.items()}
    longest = {n: np.zeros((2, l.neurons), np.int64) for n, l in layers.items()}
    for name, layer in layers.items():
        for source, matrix in layer.inputs.items():
            if source not in layers:
                continue  # an Input: its spikes come from off the chip
            for dest in (c for c in cores if c["layer"] == name):  # one output axon per (neuron, core)
                pre = presynaptic_neurons(matrix, dest["lo"], dest["hi"])
                dest.setdefault("received_per_spike", {})[source] = len(pre) / layers[source].neurons
                tile = core_of[source][pre] // per_tile
                row, col = mesh_position(tile, grid)
                ew, ns = np.abs(col - dest["position"][1]), np.abs(row - dest["position"][0])
                per_neuron[source][:, pre] += [np.ones(len(pre)), tile == dest["index"] // per_tile, ew, ns]
                np.maximum.at(longest[source], (0, pre), ew)
                np.maximum.at(longest[source], (1, pre), ns)
    for c in cores:
        load = per_neuron[c["layer"]][:, c["lo"]:c["hi"]].sum(axis=1)
        routes = longest[c["layer"]][:, c["lo"]:c["hi"]]
        c["output_axons"] = int(load[0])
        c.update(messages_per_spike=load[0] / c["neurons"], local_messages_per_spike=load[1] / c["neurons"],
                 hops_ew_per_spike=load[2] / c["neurons"], hops_ns_per_spike=load[3] / c["neurons"],
                 route_hops=(int(routes[0].max(initial=0)), int(routes[1].max(initial=0))))


def _lay_out(layers: dict[str, Layer], splits: dict[str, int], bits: int, grid: tuple[int, int],
             per_tile: int) -> list[dict]:
    """Cores in layer order, each layer split evenly over splits[layer] cores, with their routes."""
    cores = []
    for name, layer in layers.items():
        starts = chunk_starts(layer.neurons, splits[name])
        neurons, synapses, axons = chunk_loads(layer, starts)
        for lo, n, s, a in zip(starts, neurons, synapses, axons):
            i = len(cores)
            cores.append(dict(index=i, layer=name, position=mesh_position(i // per_tile, grid), lo=int(lo),
                              hi=int(lo + n), neurons=int(n), synapses=int(s), synapse_bits=int(s) * bits,
                              input_axons=int(a)))
    _route_spikes(layers, cores, grid, per_tile)
    return cores


def place_mesh(profile: ChipProfile, layers: dict[str, Layer], bits: int, problems: list[str]):
    """(cores, grid, notes) of the layers on a mesh chip; every limit exceeded is added to `problems`.
    Cores are numbered in layer order; core i sits in tile i // cores_per_tile."""
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
    per_tile = int(profile.limits.get("cores_per_tile", 1))
    grid = mesh_grid(math.ceil(profile.limits.get("cores", sum(splits.values())) / per_tile),
                     profile.limits.get("mesh_rows"))
    out_limit = limits.get("output_axons_per_core")
    while True:  # output axons depend on where the consumers sit: widen a layer until its cores fit
        cores = _lay_out(layers, splits, bits, grid, per_tile)
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
