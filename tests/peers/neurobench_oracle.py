"""NeuroBench 2.3.0 as the judge of `spikestack.report.neurobench` (issue 21): both sides on one model.

A helper module (as peer_oracle.py), imported by test_neurobench.py and bench/neurobench_parity.py.
NeuroBench's side, `side_neurobench.py reference` in `.venv-neurobench`, builds snnTorch models
(an MLP and a conv net), exports each with snnTorch's own exporter and runs NeuroBench's Benchmark on
it; ours reads that file with `--preset snntorch`, simulates the same input with counting and computes
the metrics from the Program and the Counts. Neither side sees the other's numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from peer_oracle import side

KINDS = ("mlp", "conv")
PRESET = "snntorch"
TOLERANCE = 1e-6  # the bar: max relative difference over every metric


def make_references(out: Path, steps: int | None = None, batch: int | None = None) -> Path:
    """NeuroBench's results, snnTorch's files and the inputs in `out` (side_neurobench.py's contract)."""
    sizes = [arg for name, value in (("--steps", steps), ("--batch", batch)) if value is not None
             for arg in (name, str(value))]
    side("neurobench", "reference", out, *sizes)
    return out


def theirs(directory: Path, kind: str) -> dict:
    return json.loads((directory / f"{kind}.json").read_text())


def ours(directory: Path, kind: str) -> dict:
    """Our metrics of the kind's file and input: lowered with the preset alone, simulated with counts."""
    from spikestack.pipeline import load_program
    from spikestack.report.neurobench import neurobench_metrics
    from spikestack.simulators import simulate

    program = load_program(directory / f"{kind}.nir", PRESET)
    run = simulate(program, np.load(directory / f"{kind}.npz")["input"], count=True)
    return neurobench_metrics(program, run.counts)


def flatten(results: dict, prefix: str = "") -> dict[str, float]:
    """{"SynapticOperations": {"Dense": 1}} -> {"SynapticOperations.Dense": 1}, in NeuroBench's order."""
    flat: dict[str, float] = {}
    for key, value in results.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def relative_difference(a: float, b: float) -> float:
    """|a - b| / |b|; 0 when both are 0, inf when only the peer's is."""
    if a == b:
        return 0.0
    return abs(a - b) / abs(b) if b else float("inf")


def differences(mine: dict, peer: dict) -> dict[str, float]:
    """Per metric (flattened names, NeuroBench's first), our relative difference from NeuroBench: a
    metric only one side has, or None on one side only (NeuroBench's value of a failed metric), is an
    infinite difference."""
    a, b = flatten(mine), flatten(peer)

    def one(key: str) -> float:
        if key not in a or key not in b:
            return float("inf")
        if a[key] is None or b[key] is None:
            return 0.0 if a[key] is b[key] else float("inf")
        return relative_difference(float(a[key]), float(b[key]))

    return {key: one(key) for key in list(b) + [k for k in a if k not in b]}
