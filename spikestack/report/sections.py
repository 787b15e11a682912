"""The deploy report's sections as neutral blocks (text, tables, plots) that markdown.py and html.py
render: the wording and the numbers are decided once, here, for both formats."""

from __future__ import annotations

from dataclasses import dataclass, field

from spikestack.report.energy import fits_word, si
from spikestack.report.agreement import describe_agreement


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Plot:
    key: str  # key in report["plots"]: a PNG path relative to the report directory
    caption: str


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)


def _shape(shape) -> str:
    return "x".join(map(str, shape)) or "-"


def graph_section(report: dict) -> Section:
    g, o = report["graph"], report["options"]
    recurrent = "; ".join(" -> ".join(r["edge"]) for r in g["recurrent"]) or "none"
    ins = ", ".join(f"{k} {_shape(v)}" for k, v in g["inputs"].items())
    outs = ", ".join(f"{k} {_shape(v)}" for k, v in g["outputs"].items())
    return Section("Graph", [
        Text(f"{g['path']}: {len(g['nodes'])} nodes, {g['parameters']:,} parameters, {g['neurons']:,} neurons; "
             f"inputs {ins}; outputs {outs}; recurrent edges: {recurrent}."),
        Text(f"Lowering options: dt = {o['dt']:g}, reset = {o['reset']} ({o['reset_timing']}), integration = "
             f"{o['integration']}, CubaLIF order = {o['cuba_order']}, initial potential = {o['initial_potential']:g} "
             f"thresholds, preset = {o['preset'] or 'none'}."),
        Table(["node", "type", "input", "output", "parameters", "neurons"],
              [[n["name"], n["type"], _shape(n["input_shape"]), _shape(n["output_shape"]), f"{n['parameters']:,}",
                f"{n['neurons']:,}"] for n in g["nodes"]])])


def backends_section(report: dict) -> Section:
    labelled = any(b["accuracy"] is not None for b in report["backends"])
    rows = [[b["name"], b["status"], str(b["samples"]), "-" if b["accuracy"] is None else f"{b['accuracy']:.3f}",
             "-" if b["output_sum_per_sample"] is None else f"{b['output_sum_per_sample']:.4g}"]
            for b in report["backends"]]
    return Section("Accuracy per backend" if labelled else "Backends (no labels: outputs only)", [
        Text(f"Input: {report['input']['description']}."),
        Table(["backend", "status", "samples", "accuracy", "output / sample"], rows),
        Plot("accuracy", "Accuracy per backend" if labelled else "Output per backend")])


def agreement_section(report: dict) -> Section:
    blocks = [Text(describe_agreement(a)) for a in report["agreement"]] or [
        Text("Only one backend ran: nothing to compare.")]
    for a in report["agreement"]:
        if not a.get("status") and not a["identical"]:
            blocks.append(Table(["node", "compared", "differing values"],
                                [[n, a["compared"][n], str(d)] for n, d in a["differences"].items()]))
    return Section("Agreement between backends", blocks)


def chips_section(report: dict) -> Section:
    e = report["energy"]
    seconds = f"{si(e['dt_seconds'], 's')} per step ({e['dt_source']})" if e["dt_seconds"] else \
        f"no seconds per step ({e['dt_source']}): latency and static power unknown"
    rows = []
    for chip, row in report["chips"].items():
        if not row["fits"]:
            rows.append([chip, "no", "-", "-", "-", "-", "; ".join(row["violations"])])
            continue
        energy, dominant = si(row["energy_j"], "J", not row["energy_complete"]), row["dominant"] or "-"
        if row["model"] == "ann" and row.get("ann_one_pass_j") is not None:  # a static input needs one pass
            energy, dominant = si(row["ann_one_pass_j"], "J"), "one ANN pass (dense MACs of one step)"
        rows.append([chip, fits_word(row), energy, si(row["latency_s"], "s", not row["latency_complete"]), dominant,
                     str(row["cores_used"]), ""])
    return Section("Energy and latency per chip", [
        Text(f"Per inference (mean over {e['samples']} samples of {e['steps']} steps), {seconds}. '≥' marks a "
             f"lower bound: a term the chip's profile has no constant for is left out. Terms, constants and "
             f"their sources per chip: {e['report']}."),
        Table(["chip", "fits", "energy / inference", "latency / inference", "dominant term", "cores", "violations"],
              rows)])


def _joules(value: float | None) -> str:
    return "-" if value is None else si(value, "J")  # a layer the chip's model does not break out


def per_layer_section(report: dict) -> Section:
    chips = list(report["per_layer"])
    layers = list(dict.fromkeys(layer for per in report["per_layer"].values() for layer in per))
    blocks: list = [Text("Energy per inference of each layer (J) on every chip that fits; for the ANN baselines, "
                         "the layer's dense MACs at every step.")]
    if chips:
        blocks.append(Table(["layer"] + chips, [[layer] + [_joules(report["per_layer"][c].get(layer)) for c in chips]
                                                for layer in layers]))
    blocks += [Plot("energy_per_layer", "Energy per layer and chip"), Plot("energy_per_step", "Energy per time step")]
    return Section("Per-layer breakdown", blocks)


def raster_section(report: dict) -> Section:
    return Section("Spike raster", [
        Plot("spike_raster", "Spikes of the first sample, layers stacked"),
        Table(["node", "type", "neurons", "spikes / inference", "rate / neuron / step"],
              [[r["node"], r["type"], f"{r['neurons']:,}", f"{r['spikes_per_inference']:.4g}", f"{r['rate']:.3g}"]
               for r in report["layers"]])])


def snn_vs_ann_section(report: dict) -> Section:
    ann, snn, ops = report["snn_vs_ann"]["ann"], report["snn_vs_ann"]["snn"], report["operations"]
    reference = next(iter(ann.values()), {}).get("one_pass_j")
    ratio = lambda j: f"{j / reference:.3g}x" if reference and j is not None else "-"  # noqa: E731
    rows = [[f"ANN, one dense pass on {c}", si(v["one_pass_j"], "J"), ratio(v["one_pass_j"])] for c, v in ann.items()]
    rows += [[f"SNN's effective ops on {c} arithmetic", si(v["snn_ops_j"], "J"), ratio(v["snn_ops_j"])]
             for c, v in ann.items()]
    rows += [[f"SNN on {c}", si(v["energy_j"], "J", v["lower_bound"]), ratio(v["energy_j"])] for c, v in snn.items()]
    return Section("SNN vs ANN", [
        Text(f"Operations per inference (mean over samples): {ops['synaptic_events']:,.0f} synaptic events, "
             f"{ops['effective_acs']:,.0f} effective ACs, {ops['effective_macs']:,.0f} effective MACs, "
             f"{ops['spikes_out']:,.0f} spikes; the same network as an ANN: {ops['dense_macs']:,.0f} dense MACs "
             f"over all steps. The ANN baseline is one pass (one step's dense MACs) on a static input."),
        Table(["figure", "energy / inference", "vs ANN one pass"], rows)])


def quantisation_section(report: dict) -> Section:
    q = report["quantisation"]
    if q["status"] != "ok":
        return Section("Quantisation error per layer", [Text(f"loihi: {q['status']}")])
    rows = [[op, f"{max(errs.values(), default=0.0):.3g}", ", ".join(f"{k} {v:.3g}" for k, v in errs.items())]
            for op, errs in q["errors"].items()]
    return Section("Quantisation error per layer", [
        Text("Loihi integers (8-bit weight mantissa and exponent, 12-bit decays, 24-bit v): relative error "
             "(norm of the error / norm of the scaled float value) per op and quantity."),
        Table(["op", "worst", "per quantity"], rows)])


def describe_netx(result: dict) -> str:
    """One line on lava-dl's run of a netx file against loihi mode (`pipeline.verify_netx`'s result)."""
    if result["status"] in ("not written", "not checked"):
        return f"lava-dl: {result['status']}: {result['why']}"
    where = f"{result['steps']} steps x {result['samples']} samples"
    if result["status"] == "identical":
        return f"lava-dl: identical to loihi mode, every layer's spikes, {where} ({result['spikes']} spikes)"
    first = result.get("first_difference")
    if first is None:
        return f"lava-dl: different: {result['why']}"
    return (f"lava-dl: different from loihi mode, first at step {first['step']}, sample {first['sample']}, layer "
            f"'{first['layer']}' ({first['ours']} spikes here, {first['lava_dl']} in lava-dl)")


def exports_section(report: dict) -> Section:
    netx = report.get("exports", {}).get("netx")
    if netx is None:
        return Section("Exports", [Text("none asked for (deploy --export netx writes a Loihi 2 netx file)")])
    where = f"{netx['file']}, " if netx.get("file") else ""
    return Section("Exports", [Text(f"netx (Loihi 2, lava-dl): {where}{describe_netx(netx)}")])


def report_sections(report: dict) -> list[Section]:
    return [graph_section(report), backends_section(report), agreement_section(report), chips_section(report),
            per_layer_section(report), raster_section(report), snn_vs_ann_section(report),
            quantisation_section(report), exports_section(report)]
