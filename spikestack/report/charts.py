"""The deploy report's own chart: accuracy per backend (the energy plots come from `energy_plots`).

Drawn on matplotlib's Agg canvas directly, never through pyplot, like `energy_plots`: a library
must not switch its caller's global backend or leak open figures.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from spikestack.outputs import write_atomically


def _value(entry: dict, key: str) -> float | None:
    return entry.get(key) if entry["status"] == "ok" else None


def plot_backends(backends: list[dict], path: Path) -> str | None:
    """Bars per backend run: accuracy when the input had labels, else the mean output per sample
    (without labels that is what can be compared). A run that did not happen is a labelled gap, so
    the chart shows that the backend was tried and why it has no bar."""
    if not backends:
        return None
    key = "accuracy" if any(_value(e, "accuracy") is not None for e in backends) else "output_sum_per_sample"
    values = [_value(e, key) for e in backends]
    if all(v is None for v in values):
        return None
    fig = Figure(figsize=(7.5, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positions = range(len(backends))
    bars = ax.bar(positions, [v or 0.0 for v in values], color=[f"C{i % 10}" for i in positions], width=0.6)
    top = max(v for v in values if v is not None)
    for bar, entry, value in zip(bars, backends, values):
        if value is None:  # unsupported / skipped / failed: say so where the bar would be
            text = entry["status"].split(":")[0]
        else:
            text = f"{value:.3f}" if key == "accuracy" else f"{value:.3g}"
            text += f"\nn={entry['samples']}"
        ax.text(bar.get_x() + bar.get_width() / 2, (value or 0.0) + 0.02 * (top or 1.0), text,
                ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(positions), [e["name"] for e in backends], rotation=15, ha="right")
    if key == "accuracy":
        ax.set_ylim(0, 1.18)  # room for the labels above a bar at 1.0
        ax.set_ylabel("accuracy")
        ax.set_title("Accuracy per backend (n = samples run)")
    else:
        ax.set_ylim(0, 1.25 * (top or 1.0))
        ax.set_ylabel("output per sample (sum over steps and units)")
        ax.set_title("Output per backend (no labels given)")
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110))
    return str(path)
