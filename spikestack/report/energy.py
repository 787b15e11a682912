"""Energy reports: `energy.json`, `energy.md` and PNG plots for a set of chips, rendered from the
`Budget`s (or violations) that `energy` computed; nothing here places or prices anything.

Per chip: whether the network fits (or every violation, naming layer and limit), energy and latency
per inference, the per-layer breakdown, which constants dominate, and what is unknown and why. A
figure whose profile lacks a term is printed as a lower bound ("≥"), never completed by a guess.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from spikestack.energy.budget import Budget
from spikestack.ir.run import Counts
from spikestack.outputs import ensure_directory, write_text

# What a report writes into its directory (names the commands check against their inputs first).
PLOT_FILES = ("energy_per_layer.png", "spike_raster.png", "energy_per_step.png")
ENERGY_FILES = ("energy.json", "energy.md", *PLOT_FILES)

_PREFIXES = [(1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, "")]


def si(value: float | None, unit: str, lower_bound: bool = False) -> str:
    """3 significant digits with an SI prefix: 1.705e-07 J -> '171 nJ'; None -> 'unknown'."""
    if value is None:
        return "unknown"
    if value == 0:
        return f"0 {unit}"
    scale, prefix = next(((s, p) for s, p in reversed(_PREFIXES) if abs(value) >= s), _PREFIXES[0])
    return f"{'≥ ' if lower_bound else ''}{value / scale:.3g} {prefix}{unit}"


def chip_entry(result: Budget | list[str] | str) -> dict:
    """JSON form of one chip's outcome: a Budget that fits, or its violations."""
    if isinstance(result, Budget):
        return {"fits": True, **result.to_dict()}
    violations = [result] if isinstance(result, str) else list(result)
    return {"fits": False, "violations": violations}


def fits_word(entry: dict) -> str:
    """The fits column of every chip table (terminal summary, report, energy markdown): "no", "baseline"
    for an ANN, "not checked" when the profile gives no limits to place against, else "yes"."""
    if not entry["fits"]:
        return "no"
    return "baseline" if entry.get("model") == "ann" else "yes" if entry.get("fit_checked", True) else "not checked"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _summary_row(chip: str, entry: dict) -> list[str]:
    if not entry["fits"]:
        return [chip, "no", "—", "—", "—", "—"]
    dominant = entry["dominant"]
    for which in ("energy", "cycle", "latency"):
        share = entry[f"{which}_shares"].get(dominant)
        if share is not None:
            dominant = f"{dominant} ({share:.0%} of {which})"
            break
    return [chip, fits_word(entry), si(entry["energy_j"], "J", not entry["energy_complete"]),
            si(entry["latency_s"], "s", not entry["latency_complete"]), dominant or "—", str(entry["cores_used"])]


def _chip_section(chip: str, entry: dict) -> list[str]:
    if not entry["fits"]:
        return [f"## {chip}: does not fit", ""] + [f"- {v}" for v in entry["violations"]] + [""]
    lines = [f"## {chip}", "", f"Energy per inference: {si(entry['energy_j'], 'J', not entry['energy_complete'])}; "
             f"latency per inference: {si(entry['latency_s'], 's', not entry['latency_complete'])}; "
             f"model: {entry['model']}; cores used: {entry['cores_used']}.", ""]
    for which, unit in (("energy", "J"), ("latency", "s"), ("cycle", "cycles")):
        terms = entry[f"{which}_terms"]
        if terms:
            rows = [[t, si(v, unit) if unit != "cycles" else f"{v:.4g}", f"{entry[f'{which}_shares'].get(t, 0):.1%}"]
                    for t, v in sorted(terms.items(), key=lambda kv: -kv[1])]
            title = "Cycles" if which == "cycle" else which.capitalize()
            lines += [f"{title} by term (per inference):", ""] + _table(["term", unit, "share"], rows) + [""]
    if entry["per_layer"]:
        terms = list(dict.fromkeys(t for layer in entry["per_layer"].values() for t in layer))
        rows = [[layer] + [si(v.get(t, 0.0), "J") for t in terms] + [si(sum(v.values()), "J")]
                for layer, v in entry["per_layer"].items()]
        lines += ["Per layer (J per inference):", ""] + _table(["layer"] + terms + ["total"], rows) + [""]
    for title, key in (("Unknown", "unknown"), ("Notes", "notes")):
        if entry[key]:
            lines += [f"{title}:", ""] + [f"- {item}" for item in entry[key]] + [""]
    if entry["extra"]:
        lines += ["Other figures:", ""] + [f"- {k}: {_plain(v, k)}" for k, v in entry["extra"].items()] + [""]
    return lines


def _plain(value, key: str = "") -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v, key)}" for k, v in value.items())
    unit = {"_j": "J", "_hz": "Hz", "_s": "s"}.get(key[key.rfind("_"):], None) if "_" in key else None
    if unit and isinstance(value, (int, float)):
        return si(float(value), unit)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_energy_markdown(report: dict) -> str:
    """`energy.md` from the report's JSON content: a summary table, then one section per chip."""
    chips = report["chips"]
    lines = ["# Energy and latency per inference", "",
             "Per-operation costs from each chip's profile (spikestack/energy/profiles, with sources). "
             "'≥' marks a lower bound: a term the profile has no constant for is left out, listed under Unknown.", ""]
    lines += _table(["chip", "fits", "energy / inference", "latency / inference", "dominant term", "cores"],
                    [_summary_row(chip, entry) for chip, entry in chips.items()]) + [""]
    for chip, entry in chips.items():
        lines += _chip_section(chip, entry)
    if report.get("plots"):
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in report["plots"]] + [""]
    return "\n".join(lines)


def _write_plots(budgets: dict, out_dir: Path, counts: Counts | None,
                 spikes: dict[str, np.ndarray] | None) -> list[str]:
    """The three plots of PLOT_FILES; a plot with nothing to show is skipped, not drawn empty."""
    # matplotlib loads only when a report is drawn; the file names stay here so that the plots
    # module needs nothing from this one (no import circle)
    from spikestack.report.energy_plots import plot_energy_per_step, plot_layer_energy, plot_raster

    layers, raster, steps = (out_dir / name for name in PLOT_FILES)
    made = [plot_layer_energy(budgets, layers), plot_raster(raster, spikes, counts),
            plot_energy_per_step(budgets, steps)]
    return [m for m in made if m]


def write_energy_report(budgets: dict[str, Budget | list[str] | str], out_dir: str | os.PathLike,
                        counts: Counts | None = None, spikes: dict[str, np.ndarray] | None = None,
                        meta: dict | None = None) -> dict:
    """Write energy.json, energy.md and the plots into out_dir; return the JSON content.
    `budgets`: chip -> Budget, or the chip's violations (list of str) when the network does not fit;
    `meta`: top-level figures the JSON carries as they are (seconds per step, steps, samples)."""
    out = ensure_directory(out_dir)
    report = {"chips": {chip: chip_entry(b) for chip, b in budgets.items()}, **(meta or {})}
    report["plots"] = _write_plots(budgets, out, counts, spikes)
    if counts is not None:
        report["counts"] = counts.to_dict()
    write_text(out / "energy.json", json.dumps(report, indent=2, default=_json_default))
    write_text(out / "energy.md", format_energy_markdown(report))
    return report


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
