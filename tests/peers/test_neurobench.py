"""NeuroBench 2.3.0 judges our NeuroBench metrics (issue 21, item 5): its own Benchmark and metric
classes (Footprint, ConnectionSparsity, ActivationSparsity, SynapticOperations) on snnTorch models,
and ours from the same files and inputs, equal to a relative 1e-6 on every metric.

side_neurobench.py makes the references in `.venv-neurobench` (NeuroBench alone on `.venv`'s torch and
snnTorch; built once in ~6 s); neurobench_oracle.py computes ours. The MLP's input is graded and its
hidden layer spikes, so it counts MACs and ACs; the conv net's input is spikes and its average pool
sends graded values on, so it counts ACs and MACs the other way round.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurobench_oracle import KINDS, PRESET, TOLERANCE, differences, flatten, make_references, ours, theirs


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    return make_references(tmp_path_factory.mktemp("neurobench"))


def _failure(mine: dict, peer: dict, diffs: dict[str, float]) -> str:
    return "; ".join(f"{key}: ours {mine.get(key)}, NeuroBench {peer.get(key)} ({diff:.3g})"
                     for key, diff in diffs.items() if diff > TOLERANCE)


@pytest.mark.parametrize("kind", KINDS)
def test_metrics_equal_neurobenchs_own(references, kind):
    mine, peer = ours(references, kind), theirs(references, kind)
    diffs = differences(mine, peer)
    assert list(flatten(mine)) == list(flatten(peer))  # NeuroBench's names, nesting and order
    assert max(diffs.values()) <= TOLERANCE, _failure(flatten(mine), flatten(peer), diffs)


@pytest.mark.parametrize("kind", KINDS)
def test_references_exercise_every_metric(references, kind):
    """Not a comparison of zeros: each net has zero weights, silent and active neurons, and both ACs
    and MACs by NeuroBench's own count."""
    peer = theirs(references, kind)
    assert 0 < peer["ConnectionSparsity"] < 1 and 0 < peer["ActivationSparsity"] < 1
    synops = peer["SynapticOperations"]
    assert synops["Effective_ACs"] > 0 and synops["Effective_MACs"] > 0
    assert synops["Effective_ACs"] + synops["Effective_MACs"] < synops["Dense"]


def test_cli_run_writes_neurobenchs_results(references, tmp_path):
    """`spikestack run K.nir --preset snntorch --stats S.json --format neurobench` writes NeuroBench's dict."""
    from spikestack.cli import main

    np.save(tmp_path / "x.npy", np.load(references / "conv.npz")["input"])
    stats = tmp_path / "s.json"
    code = main(["run", str(references / "conv.nir"), "--preset", PRESET, "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "o.npz"), "--stats", str(stats), "--format", "neurobench"])
    assert code == 0
    assert max(differences(json.loads(stats.read_text()), theirs(references, "conv")).values()) <= TOLERANCE
