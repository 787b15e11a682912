"""Reduce a sweep's chunk results to one table, and write it: `sweep.json`, `sweep.csv`, plots.

One row per configuration (time steps x mode) x chip: accuracy, energy, latency and synaptic events
per inference over the whole (limited) test set. Sums are taken in chunk order from exact parts
(integers, and `Fraction`s for energy and latency), then divided once, so the table is the same bit
for bit whichever scheduler ran the chunks.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from spikestack.report import si
from spikestack.outputs import ensure_directory, write_atomically, write_text
from spikestack.sweep.plan import SweepPlan
from spikestack.sweep.task import ChunkResult

COLUMNS = ("steps", "mode", "chip", "samples", "accuracy", "energy_per_inference_j", "latency_per_inference_s",
           "synaptic_events_per_inference", "energy_complete", "latency_complete")
# What write_outputs writes into --out (names the sweep checks against its inputs before it starts).
SWEEP_FILES = {"json": "sweep.json", "csv": "sweep.csv", "accuracy_energy": "accuracy_energy.png",
               "latency_steps": "latency_steps.png"}


@dataclass
class SweepResult:
    """The table (`rows`), per-configuration detail (accuracy, headroom, counts per node), the
    request and timings (`meta`), and the files written."""

    rows: list[dict]
    configurations: list[dict]
    meta: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "configurations": self.configurations, "meta": self.meta}

    def table(self) -> str:
        """The rows as aligned text; '≥' marks a lower bound (the profile lacks a term)."""
        head = f"{'steps':>5} {'mode':<6} {'chip':<14} {'accuracy':>8} {'energy/inf':>12} {'latency/inf':>12} {'syn.events/inf':>15}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            energy = si(r["energy_per_inference_j"], "J", not r["energy_complete"])
            latency = si(r["latency_per_inference_s"], "s", not r["latency_complete"])
            lines.append(f"{r['steps']:>5} {r['mode']:<6} {r['chip']:<14} {r['accuracy']:>8.4f} {energy:>12} "
                         f"{latency:>12} {r['synaptic_events_per_inference']:>15,.0f}")
        return "\n".join(lines)


def _mean(parts: list[Fraction | None], n: int) -> float | None:
    """Exact sum of the chunks' exact sums, rounded once; unknown if any chunk's is unknown."""
    return None if any(p is None for p in parts) else float(sum(parts, Fraction(0)) / n)


def reduce_results(plan: SweepPlan, results: list[ChunkResult]) -> SweepResult:
    rows, configurations = [], []
    for index, config in enumerate(plan.configs):
        mine = [r.evaluation for r in sorted((r for r in results if r.config == index), key=lambda r: r.chunk)]
        n = sum(r.samples for r in mine)
        if len(mine) != len(plan.chunks) or n != plan.samples:  # a lost chunk must never shrink the table
            raise RuntimeError(f"configuration {index}: {len(mine)} of {len(plan.chunks)} chunks came back")
        counts: dict[str, dict[str, int]] = {}
        for r in mine:
            for node, metrics in r.counts.items():
                for metric, total in metrics.items():
                    counts.setdefault(node, {}).setdefault(metric, 0)
                    counts[node][metric] += total
        accuracy = sum(r.correct for r in mine) / n
        synaptic = sum(m.get("synaptic_events", 0) for m in counts.values()) / n
        configurations.append({"steps": config.steps, "mode": config.mode, "samples": n, "accuracy": accuracy,
                               "headroom_bits": dict(config.headroom), "counts": counts})
        for chip in plan.chip_names:
            parts = [r.chips[chip] for r in mine]
            rows.append({"steps": config.steps, "mode": config.mode, "chip": chip, "samples": n, "accuracy": accuracy,
                         "energy_per_inference_j": _mean([p["energy"] for p in parts], n),
                         "latency_per_inference_s": _mean([p["latency"] for p in parts], n),
                         "synaptic_events_per_inference": synaptic,
                         "energy_complete": all(p["energy_complete"] for p in parts),
                         "latency_complete": all(p["latency_complete"] for p in parts)})
    return SweepResult(rows, configurations)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(energy, accuracy) points no other point beats on both: less energy and more accuracy."""
    front: list[tuple[float, float]] = []
    for energy, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or accuracy > front[-1][1]:
            front.append((energy, accuracy))
    return front


def _figure():
    """A figure on matplotlib's Agg canvas, as energy/plots.py draws: no pyplot, no global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _plot_accuracy_energy(rows: list[dict], path: Path) -> None:
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    chips = list(dict.fromkeys(r["chip"] for r in rows))
    steps = sorted({r["steps"] for r in rows})
    markers = dict(zip(chips, "osD^vPX*<>hp"))
    colours = {t: colormaps["viridis"](i / max(1, len(steps) - 1)) for i, t in enumerate(steps)}
    fig, ax = _figure()
    points = [r for r in rows if r["energy_per_inference_j"] is not None]
    for r in points:  # float filled, loihi hollow: the same chip and T sit side by side
        colour = colours[r["steps"]]
        ax.scatter(r["energy_per_inference_j"], r["accuracy"], marker=markers[r["chip"]], s=60,
                   facecolors=colour if r["mode"] == "float" else "none", edgecolors=colour, linewidths=1.5)
    front = pareto_front([(r["energy_per_inference_j"], r["accuracy"]) for r in points])
    if front:  # ringed points joined as a staircase: visible even when one point dominates all
        ax.plot(*zip(*front), drawstyle="steps-post", color="crimson", lw=1, ls="--", marker="o", ms=14,
                mfc="none", zorder=0)
    handles = [Line2D([], [], ls="", marker=markers[c], color="grey", label=c) for c in chips]
    handles += [Line2D([], [], ls="", marker="o", color=colours[t], label=f"T = {t}") for t in steps]
    handles += [Line2D([], [], ls="", marker="o", mfc="grey", mec="grey", label="float arithmetic"),
                Line2D([], [], ls="", marker="o", mfc="none", mec="grey", label="loihi arithmetic"),
                Line2D([], [], color="crimson", ls="--", marker="o", mfc="none", label="Pareto front")]
    ax.set(xscale="log", xlabel="energy per inference (J)", ylabel="accuracy", title="accuracy against energy")
    ax.legend(handles=handles, fontsize=7, loc="best")
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120))


def _plot_latency_steps(rows: list[dict], path: Path) -> None:
    fig, ax = _figure()
    for key in dict.fromkeys((r["chip"], r["mode"]) for r in rows):
        line = sorted((r["steps"], r["latency_per_inference_s"]) for r in rows
                      if (r["chip"], r["mode"]) == key and r["latency_per_inference_s"] is not None)
        if line:
            float_mode = key[1] == "float"  # loihi hollow and dashed: the two modes often coincide
            ax.plot(*zip(*line), marker="o", ms=8 if float_mode else 11, mfc=None if float_mode else "none",
                    ls="-" if float_mode else "--", label=f"{key[0]} ({key[1]})")
    ax.set_xticks(sorted({r["steps"] for r in rows}))
    ax.set(yscale="log", xlabel="time steps T", ylabel="latency per inference (s)", title="latency against time steps")
    ax.legend(fontsize=7)
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120))


def write_outputs(result: SweepResult, out_dir: str | Path) -> dict[str, str]:
    """sweep.json, sweep.csv (one row per configuration x chip) and the two plots."""
    out = ensure_directory(out_dir, "--out")
    files = {key: out / name for key, name in SWEEP_FILES.items()}
    write_text(files["json"], json.dumps(result.to_dict(), indent=1))

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows({k: ("" if r[k] is None else r[k]) for k in COLUMNS} for r in result.rows)

    write_atomically(files["csv"], write_csv)
    _plot_accuracy_energy(result.rows, files["accuracy_energy"])
    _plot_latency_steps(result.rows, files["latency_steps"])
    return {k: str(v) for k, v in files.items()}
