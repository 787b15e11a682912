"""PNG plots of energy budgets: per-layer energy by chip, a spike raster, energy per time step
(`report.energy` names the files and draws them into an energy report).

Figures are drawn on matplotlib's Agg canvas directly (`Figure` + `FigureCanvasAgg`), never through
pyplot: a library must not switch its caller's global backend or leak open figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from spikestack.energy.budget import Budget
from spikestack.ir.run import Counts
from spikestack.outputs import write_atomically


def _save(fig: Figure, path: Path) -> str:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110))
    return str(path)


def _log_axis(ax, values: list[float]) -> None:
    """Log scale bounded by the data: bars start at 0, which on a log axis would stretch it over
    hundreds of decades (and make tick layout slow)."""
    positive = [v for v in values if v > 0]
    ax.set_yscale("log")
    if positive:
        ax.set_ylim(min(positive) / 2, max(positive) * 2)


def _known(budgets: dict) -> dict[str, Budget]:
    return {chip: b for chip, b in budgets.items() if isinstance(b, Budget) and b.energy_j is not None}


def plot_layer_energy(budgets: dict, path: Path) -> str | None:
    """Grouped bars: energy per inference of each layer, one bar per chip (log scale: chips differ
    by orders of magnitude)."""
    known = {c: b for c, b in _known(budgets).items() if b.per_layer}
    if not known:
        return None
    layers = list(dict.fromkeys(layer for b in known.values() for layer in b.per_layer))
    fig = Figure(figsize=(min(16.0, max(6.0, 0.45 * len(layers) * len(known) + 3)), 4.2))
    ax = fig.add_subplot()
    width, heights = 0.8 / len(known), []
    for i, (chip, budget) in enumerate(known.items()):
        joules = [sum(budget.per_layer.get(layer, {}).values()) for layer in layers]
        ax.bar(np.arange(len(layers)) + (i - (len(known) - 1) / 2) * width, joules, width, label=chip)
        heights += joules
    ax.set_xticks(np.arange(len(layers)), layers, rotation=30, ha="right")
    _log_axis(ax, heights)
    ax.set_ylabel("energy per inference (J)")
    ax.set_title("Energy per layer")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_energy_per_step(budgets: dict, path: Path) -> str | None:
    known = {c: b for c, b in _known(budgets).items() if b.energy_per_step is not None}
    if not known:
        return None
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for chip, budget in known.items():
        ax.plot(np.arange(len(budget.energy_per_step)), budget.energy_per_step, label=chip)
    _log_axis(ax, [float(v) for b in known.values() for v in b.energy_per_step])
    ax.set_xlabel("time step")
    ax.set_ylabel("energy per step (J, mean over samples)")
    ax.set_title("Energy per time step")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_raster(path: Path, spikes: dict[str, np.ndarray] | None = None, counts: Counts | None = None,
                sample: int = 0) -> str | None:
    """Spike raster of one sample from recorded spikes {node: (T, B, *shape)}, layers stacked. Without
    recordings, a per-layer heat map of spikes per step from the counts (what was counted, not who)."""
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    if spikes:
        offset, ticks = 0, []
        for i, (node, s) in enumerate(spikes.items()):
            s = np.asarray(s)
            flat = s[:, min(sample, s.shape[1] - 1)].reshape(s.shape[0], -1)
            t, n = np.nonzero(flat)
            ax.scatter(t, n + offset, s=2, marker="|", color=f"C{i % 10}")
            ticks.append((offset + flat.shape[1] / 2, node))
            offset += flat.shape[1]
        ax.set_yticks([y for y, _ in ticks], [n for _, n in ticks])
        ax.set_ylim(-0.5, max(offset, 1) - 0.5)
        ax.set_ylabel("neuron (by layer)")
        ax.set_title(f"Spike raster, sample {sample}")
    elif counts is not None:
        nodes = [n for n, m in counts.per_node.items() if "spikes_out" in m and m["spikes_out"].any()]
        if not nodes:
            return None
        grid = np.stack([counts.per_node[n]["spikes_out"][:, sample] for n in nodes])
        image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis")
        ax.set_yticks(np.arange(len(nodes)), nodes)
        fig.colorbar(image, ax=ax, label="spikes")
        ax.set_title(f"Spikes per node and step, sample {sample} (no recorded spikes: counts)")
    else:
        return None
    ax.set_xlabel("time step")
    return _save(fig, path)

