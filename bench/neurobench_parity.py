"""NeuroBench parity: our NeuroBench metrics beside NeuroBench 2.3.0's own, on the same models and inputs.

NeuroBench's side (tests/peers/side_neurobench.py, in `.venv-neurobench`, made on first use in ~6 s):
snnTorch builds an MLP (16-24-10 Leaky, graded input) and a conv net (2x8x8 -conv3x3-> 4x8x8 Leaky
-avgpool2-> 64 -> 10 Leaky, spike input), 30 % of each layer's weights pruned; snnTorch's exporter
writes each as NIR and NeuroBench's Benchmark runs Footprint, ConnectionSparsity, ActivationSparsity
and SynapticOperations on the snnTorch model, one sample per batch. Ours: `spikestack.report.neurobench`
on the exported file (`--preset snntorch`) and the simulator's counts of the same input. Neither side
sees the other's numbers; the table shows both and their relative difference (the bar: 1e-6).

    .venv/bin/python bench/neurobench_parity.py [--steps 50] [--batch 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "peers")]

from neurobench_oracle import KINDS, TOLERANCE, differences, flatten, make_references, ours, theirs  # noqa: E402


def _cell(value) -> str:
    if value is None:
        return "None"
    return f"{value:,}" if isinstance(value, int) else f"{value:.10g}"


def table(results: dict[str, tuple[dict, dict]]) -> tuple[str, float]:
    """Markdown rows per net and metric, and the largest relative difference over all of them."""
    rows = [("net", "metric", "spikestack", "NeuroBench 2.3.0", "relative difference"), ("---",) * 5]
    worst = 0.0
    for net, (mine, peer) in results.items():
        diffs, a, b = differences(mine, peer), flatten(mine), flatten(peer)
        worst = max(worst, *diffs.values())
        rows += [(net, key, _cell(a.get(key)), _cell(b.get(key)), f"{diff:.2g}") for key, diff in diffs.items()]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows), worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        directory = make_references(Path(tmp), args.steps, args.batch)
        peer_seconds = time.perf_counter() - start
        start = time.perf_counter()
        results = {kind: (ours(directory, kind), theirs(directory, kind)) for kind in KINDS}
        our_seconds = time.perf_counter() - start
    text, worst = table(results)
    print(f"{args.steps} steps, {args.batch} samples per net; NeuroBench's side {peer_seconds:.1f} s "
          f"(snnTorch export and Benchmark, its Python's start included), ours {our_seconds:.1f} s\n")
    print(text)
    print(f"\nlargest relative difference: {worst:.3g} (bar {TOLERANCE:g})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
