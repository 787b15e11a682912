"""Lowering options: what NIR does not carry (dt, reset mode, ...) and the exporter presets.

NIR's dynamics are continuous ODEs with no dt, and its only reset is "set to v_reset". Exporters
encode time and reset differently (BRIEF §2), so the user names them: explicitly, through a preset
that fills in the rest, or through the metadata our own exporter writes. An explicit option always
wins over a preset, a preset over graph metadata; nothing is guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from spikestack.errors import OptionsError
from spikestack.ir.presets import PRESETS

RESETS = ("zero", "subtract")
RESET_TIMINGS = ("immediate", "delayed")
INTEGRATIONS = ("euler", "exact")
CUBA_ORDERS = ("current_first", "voltage_first")
THRESHOLDS = (">", ">=")  # NIR's Threshold is strict; Sinabs and Rockpool fire at v >= theta
SPIKES_PER_STEP = ("one", "many")  # "many": floor(v / theta) spikes in one step (Sinabs MultiSpike, Rockpool)
FIXED_POINTS = ("loihi", "netx")  # the integer formats ir.quantise targets (see LoweringOptions)


def _real(value) -> bool:
    """A finite int or float; bool is not a number here, NaN and inf pass `> 0` checks."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class LoweringOptions:
    """How to discretise a NIR graph.

    dt: time step in the graph's time unit (seconds for most exporters, 1 for Sinabs' step units).
    reset: "zero" sets v to the node's v_reset after a spike; "subtract" removes v_threshold.
    reset_timing: "immediate" resets in the step that spikes (Norse, Lava, Sinabs); "delayed" applies
        the reset in the next step after the decay, as snnTorch 1.0 does with its default
        reset_delay=True (mem <- beta*mem + syn - thr*spiked_before).
    initial_potential: initial v as a multiple of each neuron's threshold (0.5 = theta/2).
    integration: "euler" (what exporters assume) or "exact" (exponential) for leaky dynamics.
    cuba_order: whether a CubaLIF's voltage integrates the current of this step ("current_first",
        snnTorch and Lava) or of the previous one ("voltage_first", Norse 1.0).
    threshold: ">" (NIR, Norse, snnTorch, Lava) or ">=" (Sinabs, Rockpool): when v fires.
    spikes_per_step: "one", or "many": floor(v / v_threshold) spikes at once, each removing one
        threshold under the subtractive reset (Sinabs' MultiSpike, its default; Rockpool's LIF).
    fixed_point: the integers loihi mode runs (`ir.quantise`): "loihi", Lava's processes with any
        weight exponent and bias exponent; "netx", what a lava-dl netx file can hold (weight exponent
        0, bias exponent 6), so a netx export runs exactly as loihi mode did.
    integer_scale: every neuron's integer scale (integers per float unit) instead of the widest
        the bit widths allow; 1 where the graph's values already are Loihi's integers (an imported
        netx file).
    """

    dt: float
    reset: str = "zero"
    reset_timing: str = "immediate"
    initial_potential: float = 0.0
    integration: str = "euler"
    cuba_order: str = "current_first"
    threshold: str = ">"
    spikes_per_step: str = "one"
    fixed_point: str = "loihi"
    integer_scale: float | None = None
    preset: str | None = None

    def __post_init__(self):
        if not (_real(self.dt) and self.dt > 0):
            raise OptionsError(f"dt must be a positive finite number, got {self.dt!r}")
        if not _real(self.initial_potential):
            raise OptionsError(f"initial_potential must be a finite number, got {self.initial_potential!r}")
        if self.integer_scale is not None and not (_real(self.integer_scale) and self.integer_scale > 0):
            raise OptionsError(f"integer_scale must be a positive finite number, got {self.integer_scale!r}")
        if self.preset is not None and self.preset not in PRESETS:
            raise OptionsError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        for name, allowed in (("reset", RESETS), ("reset_timing", RESET_TIMINGS),
                              ("integration", INTEGRATIONS), ("cuba_order", CUBA_ORDERS),
                              ("threshold", THRESHOLDS), ("spikes_per_step", SPIKES_PER_STEP),
                              ("fixed_point", FIXED_POINTS)):
            if getattr(self, name) not in allowed:
                raise OptionsError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")


METADATA_KEY = "spikestack"  # graph metadata group our exporter writes: {dt, reset, ...}


def resolve_options(graph_metadata: dict | None = None, preset: str | None = None, **explicit) -> LoweringOptions:
    """Merge graph metadata < preset < explicit options (None means "not given")."""
    if preset is not None and preset not in PRESETS:
        raise OptionsError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(LoweringOptions)}
    unknown = set(explicit) - known
    if unknown:
        raise OptionsError(f"unknown lowering option(s): {', '.join(sorted(unknown))}")
    merged: dict = {}
    stored = (graph_metadata or {}).get(METADATA_KEY, {})
    if not isinstance(stored, dict):
        raise OptionsError(f"graph metadata '{METADATA_KEY}' must be a group of lowering options, got {_plain_text(stored)}")
    merged.update({k: _plain(v, k) for k, v in stored.items() if k in known})
    merged.update(PRESETS[preset].options if preset else {})
    merged.update({k: v for k, v in explicit.items() if v is not None})
    if preset:
        merged["preset"] = preset
    if "dt" not in merged:
        raise OptionsError(
            "dt is required: NIR graphs carry no time step. Pass dt (--dt) or an exporter preset "
            f"(--preset {'|'.join(p for p in PRESETS if p != 'spikestack')})"
        )
    return LoweringOptions(**merged)


def _plain(value, key: str):
    """Metadata read back from HDF5 comes as numpy scalars or bytes; make plain Python values.

    Anything but one number or one string (an array, a group) is refused here, naming the field:
    LoweringOptions then checks the value itself."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray) and value.size != 1 or isinstance(value, dict):
        raise OptionsError(f"graph metadata '{METADATA_KEY}/{key}' must be a single value, got {_plain_text(value)}")
    value = value.item() if isinstance(value, (np.ndarray, np.generic)) else value
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _plain_text(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return "a group" if isinstance(value, dict) else repr(value)[:40]


def options_metadata(options: LoweringOptions) -> dict:
    """What our exporter writes into graph metadata so the graph needs no options at all."""
    return {METADATA_KEY: {f.name: getattr(options, f.name) for f in fields(options) if getattr(options, f.name) is not None}}

