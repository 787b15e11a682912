"""Speck: placement, one layer per DYNAP-CNN core, where a core takes a layer when the layer's kernel
and neuron memories fit that core's, padded to powers of two as in Sinabs' DYNAP-CNN backend
(`DynapcnnLayer.memory_summary`, `get_valid_mapping`); and latency, from SynSense's one published
figure, the time one event takes through a 9-layer network.

Speck is asynchronous: each event is processed as it arrives, so an inference's output follows its last
input event by one pipeline latency. SynSense gives that latency for 9 layers only; a network on fewer
cores is taken to take no longer (an upper bound: splitting it per layer would assume equal layers).
No per-operation energy is published, so Speck's energy stays unknown."""

from __future__ import annotations

import numpy as np

from spikestack.energy.budget import Budget, steps_and_batch
from spikestack.energy.layers import Layer
from spikestack.energy.placement import CoreLoad, Placement, mesh_grid, mesh_position
from spikestack.energy.profile import ChipProfile
from spikestack.ir.primitives import Role
from spikestack.ir.run import Counts
from spikestack.ir.program import Program


def _pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()  # the next power of two at or above n (1 for n <= 1)


def speck_memory(layer: Layer, program: Program, padded: bool = True) -> tuple[int, int]:
    """(kernel, neuron) memory entries of one DYNAP-CNN layer, Sinabs' `DynapcnnLayer.memory_summary`:
    kernel = c * 2^(ceil(log2(kx*ky)) + ceil(log2(f))), neuron = f * 2^(ceil(log2(h)) + ceil(log2(w))).
    A Linear becomes a conv whose kernel spans its input: the (c, h, w) before a Flatten, else (n, 1, 1)."""
    kernel = 0
    for name in layer.members:
        op = program.op(name)
        if not op.primitive.has_weight_array:
            continue
        w = np.shape(op.synapse.weight)
        f, c, kxy = w[0], w[1] * int(getattr(op.synapse, "groups", 1)), int(np.prod(w[2:]))
        if op.primitive.is_dense:
            before = program.op(op.sources[0].name) if op.sources else op
            flattened = before.primitive.role is Role.RESHAPE and len(before.in_shape) == 3
            shape = before.in_shape if flattened else (w[1], 1, 1)
            c, kxy = shape[0], shape[1] * shape[2]
        kernel += c * _pow2(kxy) * _pow2(f) if padded else c * kxy * f
    out = program.op(layer.name).out_shape
    neuron = out[0] * int(np.prod([_pow2(s) for s in out[1:]])) if padded else int(np.prod(out))
    return kernel, neuron


def _match(options: list[list[int]], n_cores: int) -> list[int] | None:
    """Assign each layer a distinct core among its options (augmenting paths), or None."""
    owner = [-1] * n_cores

    def claim(i: int, seen: set) -> bool:
        for j in options[i]:
            if j not in seen:
                seen.add(j)
                if owner[j] < 0 or claim(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    if not all(claim(i, set()) for i in range(len(options))):
        return None
    return [owner.index(i) for i in range(len(options))]


def place_speck(profile: ChipProfile, layers: dict[str, Layer], program: Program, bits: int, problems: list[str]):
    """(cores, grid, notes): one layer per core; a core takes a layer when its padded memories fit
    (Sinabs `get_valid_mapping`). Every limit exceeded is added to `problems`."""
    kmem, nmem = profile.limits["kernel_memory_entries_per_core"], profile.limits["neuron_memory_entries_per_core"]
    padded = bool(profile.limits.get("memory_padded_pow2", False))
    needs = {n: speck_memory(layer, program, padded) for n, layer in layers.items()}
    if len(layers) > len(kmem):
        problems.append(f"network: {len(layers)} layers > cores={len(kmem)} (one layer per DYNAP-CNN core)")
    options = []
    for name, (k, n) in needs.items():
        options.append([j for j in range(len(kmem)) if k <= kmem[j] and n <= nmem[j]])
        for need, caps, limit in ((k, kmem, "kernel_memory_entries_per_core"),
                                  (n, nmem, "neuron_memory_entries_per_core")):
            if need > max(caps):
                problems.append(f"layer '{name}': {need} entries > {limit} (largest core {max(caps)})")
    assign = None if problems else _match(options, len(kmem))
    if assign is None and not problems:
        problems.append(f"layers {', '.join(layers)}: no one-layer-per-core assignment fits the cores' memories")
    grid, cores = mesh_grid(len(kmem)), []
    for (name, layer), j in zip(layers.items(), assign or []):
        k, n = needs[name]
        memory = {"kernel_entries": k, "kernel_capacity": kmem[j], "neuron_entries": n, "neuron_capacity": nmem[j]}
        cores.append(CoreLoad(j, name, mesh_position(j, grid), layer.neurons, layer.synapses, k * bits,
                              sum(m.shape[1] for m in layer.inputs.values()), memory=memory))
    padding = "padded to powers of two" if padded else "unpadded"
    return tuple(cores), grid, [f"one layer per DYNAP-CNN core; kernel and neuron memories {padding} (Sinabs)"]


SPECK_LAYERS = 9  # the figure's network: every one of Speck's cores in the pipeline


def speck_latency(budget: Budget, counts: Counts, placement: Placement, profile: ChipProfile) -> None:
    """Set the budget's latency to the event pipeline latency, the profile's `t_event_9_layers`; per step
    it is charged to the last step (the one whose events end the inference)."""
    seconds = profile.constant("latency", "t_event_9_layers").si
    steps, samples = steps_and_batch(counts)
    used = len(placement.cores)
    budget.unknown = [u for u in budget.unknown if not u.startswith("latency:")]
    budget.latency_s, budget.latency_complete = seconds, True
    budget.latency_terms = {"event_pipeline": seconds}
    budget.latency_per_step = np.zeros(steps)
    budget.latency_per_step[-1] = seconds
    budget.latency_per_sample = np.full(samples, seconds)
    budget.notes.append(f"latency: Speck's published {seconds * 1e6:g} us for one event through {SPECK_LAYERS} "
                        f"layers, the time from the last input event to the output; this network uses {used} of "
                        f"the {SPECK_LAYERS} cores and is taken to take no longer (an upper bound)")
