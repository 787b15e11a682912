"""The two plain-text renderings of the deploy report: `report.md` (GitHub-flavoured Markdown, plots
as relative links) and the terminal summary (accuracy per backend, agreement, operations per
inference, quantisation, one line per chip with the ANN baselines as one dense pass)."""

from __future__ import annotations

from spikestack.report.energy import fits_word, si
from spikestack.report.agreement import describe_agreement
from spikestack.report.sections import Plot, Table, Text, report_sections


def _cell(value: str) -> str:
    """A pipe inside a cell would end it; newlines would end the row."""
    return " ".join(str(value).split()).replace("|", "\\|")


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(map(_cell, header)) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]


def format_markdown(report: dict) -> str:
    """The whole report; a plot that was not drawn (nothing to show) is left out, not linked."""
    lines = [f"# Deploy report: {report['graph']['path']}", ""]
    for section in report_sections(report):
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Text):
                lines += [block.text, ""]
            elif isinstance(block, Table):
                lines += markdown_table(block.header, block.rows) + [""]
            elif isinstance(block, Plot) and block.key in report["plots"]:
                lines += [f"![{block.caption}]({report['plots'][block.key]})", ""]
    return "\n".join(lines)


def _backend_lines(report: dict) -> list[str]:
    source = report["input"]
    labelled = any(b["accuracy"] is not None for b in report["backends"])
    title = f"accuracy on the {source['dataset']} test set" if labelled and source.get("dataset") else \
        f"backends on {source['description']}"
    lines = [title]
    for b in report["backends"]:
        if b["status"] != "ok":
            lines.append(f"  {b['name']:<22} {b['status']}")
        elif labelled and b["accuracy"] is not None:
            lines.append(f"  {b['name']:<22} {b['accuracy']:6.3f}  ({b['samples']} samples)")
        else:
            lines.append(f"  {b['name']:<22} output {b['output_sum_per_sample']:.4g} per sample  "
                         f"({b['samples']} samples)")
    return lines


def _chip_lines(report: dict) -> list[str]:
    lines = [f"{'chip':<15} {'fits':<12} {'energy/inference':>18} {'latency/inference':>18}  dominant"]
    for chip, row in report["chips"].items():
        if not row["fits"]:
            lines.append(f"{chip:<15} {'no':<12} {'-':>18} {'-':>18}  {'; '.join(row['violations'])[:60]}")
            continue
        energy = si(row.get("energy_j"), "J", not row.get("energy_complete", True))
        latency = si(row.get("latency_s"), "s", not row.get("latency_complete", True))
        note = row.get("dominant") or "-"
        fits = fits_word(row)
        if row["model"] == "ann":  # the same network as an ANN: one pass on the static input
            energy, note = si(row.get("ann_one_pass_j"), "J"), "one ANN pass (dense MACs of one step)"
        lines.append(f"{chip:<15} {fits:<12} {energy:>18} {latency:>18}  {note}")
    return lines


def format_summary(report: dict) -> str:
    ops = report["operations"]
    q = report["quantisation"]
    quant = "; ".join(f"{op}: worst {max(e.values(), default=0.0):.3g}" for op, e in q["errors"].items()) \
        if q["status"] == "ok" else q["status"]
    lines = [""] + _backend_lines(report)
    lines += ["agreement: " + describe_agreement(a) for a in report["agreement"]]
    lines.append(f"operations per inference (float run, mean over samples): {ops['synaptic_events']:,.0f} synaptic "
                 f"events, {ops['spikes_out']:,.0f} spikes, {ops['dense_macs']:,.0f} dense MACs")
    lines.append(f"quantisation to Loihi integers, worst relative error per layer: {quant}")
    return "\n".join(lines + [""] + _chip_lines(report))
