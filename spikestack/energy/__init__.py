"""Energy and latency budgets, the model only: chip profiles (limits and per-operation costs, as
data), placement on cores and the per-operation estimate. Every function takes `ChipProfile`
objects, never chip names (but `load_profile` and `list_profiles`, which turn names into profiles);
the reports that render budgets live in `spikestack.report.energy`."""

from spikestack.energy.budget import Budget
from spikestack.energy.layers import Layer, find_layers
from spikestack.energy.mapping import FitError, check_fit, map_to_cores
from spikestack.energy.model import estimate
from spikestack.energy.placement import CoreLoad, Placement
from spikestack.energy.profile import ChipProfile, Constant, list_profiles, load_profile

__all__ = [
    "Budget", "ChipProfile", "Constant", "CoreLoad", "FitError", "Layer", "Placement", "check_fit", "estimate",
    "find_layers", "list_profiles", "load_profile", "map_to_cores",
]
