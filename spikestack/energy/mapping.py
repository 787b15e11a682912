"""`map_to_cores`: place a Program's neurons on a chip's cores within the profile's per-core limits.

Layers come from `find_layers` (layers.py). Loihi-like chips: neurons of a layer are split evenly
over the fewest cores that respect every limit the profile gives (neurons, synapse bits, input axons
= distinct presynaptic neurons, output axons = (neuron, destination core) pairs); cores sit row-major
on a square-ish mesh (allocation.py, mesh.py). Speck: one layer per core under Sinabs' DYNAP-CNN
memory rule, padded to powers of two (speck.py). Xylo: one core whose input, hidden and output pools
must each hold their layers (xylo.py). The layer, placement and placer names stay
importable from here.
"""

from __future__ import annotations

from spikestack.checks import check_count
from spikestack.energy.layers import Layer, find_layers
from spikestack.energy.mesh import PER_CORE, input_layers, place_mesh
from spikestack.energy.placement import CoreLoad, Placement, mesh_grid
from spikestack.energy.profile import ChipProfile
from spikestack.energy.speck import place_speck, speck_memory
from spikestack.energy.xylo import XYLO_POOLS, place_xylo
from spikestack.errors import ChipError
from spikestack.ir.program import Program


def _weight_bits(profile: ChipProfile, weight_bits: int | None) -> int:
    """Bits per synapse: the caller's (the quantised width), else the profile's; 0 when no limit needs it."""
    check_count(weight_bits, "weight_bits")  # 0 or fewer would place any network on one core
    bits = weight_bits if weight_bits is not None else profile.limits.get("weight_bits")
    if bits is None:
        if "synapse_memory_bits_per_core" in profile.limits or "kernel_memory_entries_per_core" in profile.limits:
            raise ChipError(f"chip profile '{profile.name}' gives no weight_bits: pass weight_bits")
        return 0
    return int(bits)


def _place(program: Program, profile: ChipProfile, weight_bits: int | None) -> tuple[Placement, list[str]]:
    layers = find_layers(program)
    bits = _weight_bits(profile, weight_bits)
    problems: list[str] = []
    if profile.kind == "ann":  # a baseline of arithmetic: nothing to place, the layers serve the breakdown
        return Placement(profile.name, layers, (), (0, 0), bits or None, ("ANN baseline: no cores",)), problems
    if "kernel_memory_entries_per_core" in profile.limits:
        cores, grid, notes = place_speck(profile, layers, program, bits, problems)
    elif any(k in profile.limits for k in XYLO_POOLS):
        cores, grid, notes = place_xylo(profile, layers, bits, problems)
    elif profile.limits.get("inputs_on_cores"):  # the inputs placed first, on cores of their own
        layers = {**input_layers(layers), **layers}
        cores, grid, notes = place_mesh(profile, layers, bits, problems)
        notes.append("inputs are spike sources on cores of their own (the profile's inputs_on_cores)")
    else:
        cores, grid, notes = place_mesh(profile, layers, bits, problems)
    checked = any(k in profile.limits for k in PER_CORE + XYLO_POOLS + ("kernel_memory_entries_per_core",))
    per_tile = int(profile.limits.get("cores_per_tile", 1))
    return Placement(profile.name, layers, cores, grid, bits or None, tuple(notes), checked, per_tile), problems


class FitError(ChipError):
    """The network does not fit the chip. `violations`: every reason, each naming the layer and the
    limit (what `check_fit` returns), so that a caller that reports them needs no second placement."""

    def __init__(self, message: str, violations: list[str]):
        super().__init__(message)
        self.violations = list(violations)


def map_to_cores(program: Program, profile: ChipProfile, weight_bits: int | None = None) -> Placement:
    """Split every layer's neurons over cores within the chip's limits, or raise a FitError naming
    the layer and the limit. `weight_bits` overrides the profile's (the quantised bit width)."""
    try:
        placement, problems = _place(program, profile, weight_bits)
    except ChipError as exc:  # a profile the placers cannot use (no weight_bits): the one violation
        raise FitError(str(exc), [str(exc)]) from None
    if problems:
        raise FitError(f"chip '{profile.name}' cannot hold the network: " + "; ".join(problems), problems)
    return placement


def check_fit(program: Program, profile: ChipProfile, weight_bits: int | None = None) -> list[str]:
    """Every reason the network does not fit the chip (empty when it fits), without raising."""
    try:
        map_to_cores(program, profile, weight_bits)
    except FitError as exc:
        return exc.violations
    return []


__all__ = ["PER_CORE", "CoreLoad", "FitError", "Layer", "Placement", "check_fit", "find_layers",
           "map_to_cores", "mesh_grid", "speck_memory"]
