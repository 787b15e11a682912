"""The deploy report as data: one JSON-ready dict that `report.json` holds and both renderers read.

The pipeline runs the stages and hands over what they returned (the graph description, one entry
per backend run, agreement results, each chip's violations, the energy report's dict, the
quantisation errors); this module only reshapes them into sections, so that report.json, report.md,
report.html and the terminal summary can never disagree with each other.

Keys: graph, options, input, backends, agreement, chips, per_layer, layers, operations, snn_vs_ann,
quantisation, energy, plots.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from spikestack.ir.options import LoweringOptions
from spikestack.ir.quantise import QuantisationReport
from spikestack.ir.run import Run
from spikestack.outputs import ensure_directory, write_text

# What write_deploy_report writes into its directory (names deploy checks against its inputs first).
REPORT_FILES = ("report.json", "report.md", "report.html", "accuracy.png")
OPERATIONS = ("synaptic_events", "effective_acs", "effective_macs", "dense_macs", "spikes_out", "neuron_updates")


def backend_entry(name: str, run: Run | None, status: str = "ok", predictions: np.ndarray | None = None,
                  labels: np.ndarray | None = None) -> dict:
    """One backend run: its status, how many samples it saw, accuracy (with labels) and the mean
    output per sample summed over steps and units (spike counts for spiking outputs)."""
    entry = {"name": name, "status": status, "samples": 0, "accuracy": None, "output_sum_per_sample": None}
    if run is None:
        return entry
    outputs = list(run.outputs.values())
    samples = int(outputs[0].shape[1])
    entry["samples"] = samples
    entry["output_sum_per_sample"] = float(sum(float(np.sum(o)) for o in outputs) / samples)
    if predictions is not None and labels is not None:
        entry["accuracy"] = float(np.mean(np.asarray(predictions) == np.asarray(labels)[:samples]))
    return entry


def quantisation_entry(result: QuantisationReport | str) -> dict:
    """Worst relative error per op and quantity, or why the graph has no Loihi integer form."""
    if isinstance(result, str):
        return {"status": result, "errors": {}}
    return {"status": "ok", "errors": {op: dict(q) for op, q in result.errors.items()}}


def _chips(fits: dict[str, list[str]], energy: dict) -> dict[str, dict]:
    """Per chip: the placement's verdict (violations, empty when it fits) joined with the energy report's
    figures."""
    rows = {}
    for chip, entry in energy["chips"].items():
        violations = fits.get(chip, entry.get("violations", []))
        row = {"fits": not violations, "violations": list(violations), "model": entry.get("model")}
        if entry.get("fits"):
            row.update({k: entry.get(k) for k in ("energy_j", "energy_complete", "latency_s", "latency_complete",
                                                   "dominant", "cores_used", "fit_checked", "unknown", "notes")})
            if entry.get("model") == "ann":
                row["ann_one_pass_j"] = entry["extra"].get("ann_one_pass_j")
                row["snn_ops_j"] = entry["extra"].get("snn_ops_j")
        rows[chip] = row
    return rows


def _layers(graph: dict, counts: dict, samples: int, steps: int) -> list[dict]:
    """Spikes per inference and firing rate (per neuron and step) of every neuron node."""
    rows = []
    for node in graph["nodes"]:
        if node["neurons"] and node["name"] in counts:
            spikes = counts[node["name"]].get("spikes_out", {}).get("total", 0) / max(samples, 1)
            rows.append({"node": node["name"], "type": node["type"], "neurons": node["neurons"],
                         "spikes_per_inference": spikes, "rate": spikes / max(node["neurons"] * steps, 1)})
    return rows


def _snn_vs_ann(chips: dict[str, dict]) -> dict:
    """The ANN baselines (one dense pass, the SNN's own ops on that arithmetic) and the SNN on each chip."""
    ann = {chip: {"one_pass_j": row["ann_one_pass_j"], "snn_ops_j": row["snn_ops_j"]}
           for chip, row in chips.items() if row["model"] == "ann" and row.get("ann_one_pass_j") is not None}
    snn = {chip: {"energy_j": row["energy_j"], "lower_bound": not row["energy_complete"]}
           for chip, row in chips.items() if row["model"] != "ann" and row["fits"] and row.get("energy_j") is not None}
    return {"ann": ann, "snn": snn}


def build_report(*, graph_path: str | os.PathLike, graph: dict, options: LoweringOptions, input_info: dict,
                 backends: list[dict], agreement: list[dict], fits: dict[str, list[str]], energy: dict,
                 quantisation: dict, energy_dir: str = "energy", exports: dict | None = None,
                 neurobench: dict | None = None) -> dict:
    """Assemble every section. `graph`: `ir.info.describe_graph`; `energy`: `write_energy_report`'s
    dict (its plots are referenced relative to the report directory, under `energy_dir`); `exports`:
    files written beside the report ({"netx": ...}), each with its verification; `neurobench`:
    NeuroBench's metrics of the run the energy is priced on (`report.neurobench`), in report.json only."""
    samples, steps = int(energy.get("samples") or 0), int(energy.get("steps") or 0)
    counts = energy.get("counts", {})
    chips = _chips(fits, energy)
    operations = {m: sum(node[m]["total"] for node in counts.values() if m in node) / max(samples, 1)
                  for m in OPERATIONS}
    per_layer = {chip: {layer: float(sum(terms.values())) for layer, terms in entry["per_layer"].items()}
                 for chip, entry in energy["chips"].items() if entry.get("fits") and entry.get("per_layer")}
    plots = {Path(p).stem: f"{energy_dir}/{Path(p).name}" for p in energy.get("plots", [])}
    return {
        "graph": {"path": str(graph_path), **{k: graph[k] for k in ("nodes", "inputs", "outputs", "parameters",
                                                                     "neurons", "recurrent")}},
        "options": {k: getattr(options, k) for k in ("dt", "reset", "reset_timing", "initial_potential",
                                                      "integration", "cuba_order", "fixed_point", "preset")},
        "input": input_info, "backends": backends, "agreement": agreement, "chips": chips,
        "per_layer": per_layer, "layers": _layers(graph, counts, samples, steps), "operations": operations,
        "snn_vs_ann": _snn_vs_ann(chips), "quantisation": quantisation,
        "energy": {"dt_seconds": energy.get("dt_seconds"), "dt_source": energy.get("dt_source"), "steps": steps,
                   "samples": samples, "report": f"{energy_dir}/energy.md"},
        "plots": plots, "exports": exports or {}, "neurobench": neurobench or {},
    }


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value):
    """JSON has no NaN or infinity: write them as null rather than as invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_deploy_report(report: dict, out_dir: str | os.PathLike) -> dict[str, str]:
    """Draw the accuracy chart, then write report.json, report.md and a self-contained report.html."""
    from spikestack.report.charts import plot_backends  # matplotlib loads only when a report is drawn
    from spikestack.report.html import format_html
    from spikestack.report.markdown import format_markdown

    out = ensure_directory(out_dir)
    chart = plot_backends(report["backends"], out / "accuracy.png")
    if chart:  # first among the plots: the headline figure of the report
        report["plots"] = {"accuracy": Path(chart).name, **report["plots"]}
    files = {"json": out / "report.json", "markdown": out / "report.md", "html": out / "report.html"}
    write_text(files["json"], json.dumps(_finite(report), indent=2, default=_json_default))
    write_text(files["markdown"], format_markdown(report))
    write_text(files["html"], format_html(report, out))
    return {k: str(v) for k, v in files.items()}
