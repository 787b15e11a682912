"""Energy and latency budgets: chip profiles (limits and per-operation costs, as data), placement on
cores, the per-operation model and reports."""

from spikestack.energy.budget import Budget
from spikestack.energy.layers import Layer, find_layers
from spikestack.energy.mapping import check_fit, map_to_cores
from spikestack.energy.model import estimate
from spikestack.energy.placement import CoreLoad, Placement
from spikestack.energy.profile import ChipProfile, Constant, list_profiles, load_profile
from spikestack.energy.report import energy_report, write_report

__all__ = [
    "Budget", "ChipProfile", "Constant", "CoreLoad", "Layer", "Placement", "check_fit", "energy_report",
    "estimate", "find_layers", "list_profiles", "load_profile", "map_to_cores", "write_report",
]
