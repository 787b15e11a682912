"""Shared helpers of the Lava backend tests: small NIR networks (a residual one among them), the Lava
skip mark, process lookup.

A helper module rather than a conftest.py: a second `conftest` module would shadow tests/conftest.py
for the tests that `from conftest import ...`.
"""

from __future__ import annotations

import os
from pathlib import Path

import nir
import numpy as np
import pytest

from spikestack.backends.lava import lava_unavailable_reason
from spikestack.backends.lava.child import CHILD_MODULE
from spikestack.ir import build_graph, load_graph, lower_graph, resolve_options
from spikestack.ir.program import Program

REASON = lava_unavailable_reason()
requires_lava = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def lower_file(path: Path, preset: str, **options) -> Program:
    graph = load_graph(path)
    return lower_graph(graph, resolve_options(graph.metadata, preset=preset, **options))


def lower_nodes(nodes: dict, edges: list, **options) -> Program:
    graph = build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return lower_graph(graph, resolve_options(**options))


def lif(shape, tau: float, threshold: float, v_leak: float = 0.0) -> nir.LIF:
    full = lambda value: np.full(shape, value, dtype=np.float32)  # noqa: E731
    return nir.LIF(tau=full(tau), r=full(1.0), v_leak=full(v_leak), v_threshold=full(threshold), v_reset=full(0.0))


def io(shape) -> tuple[nir.Input, nir.Output]:
    return nir.Input(input_type={"input": np.array(shape)}), nir.Output(output_type={"output": np.array(shape)})


def chain(names: list[str]) -> list[tuple[str, str]]:
    return list(zip(names[:-1], names[1:]))


def residual_hand_graph(loop: bool = False):
    """input -> fc1 -> lif1 -> fc2 -> lif2 -> fc3 -> sum, and three shorter paths into sum: lif1 ->
    skip (a Scale) -> sum, lif1 -> sum (spikes straight in), input -> short -> sum, where short also
    feeds lif_short. `loop`: sum -> back1 -> lif_back -> back2 -> sum closes a loop instead."""
    rng = np.random.default_rng(0)
    w = lambda: nir.Linear(weight=rng.normal(0.6, 0.5, size=(3, 3)))  # noqa: E731
    inp, out = io([3])
    nodes = {"input": inp, "fc1": w(), "lif1": lif(3, 2e-3, 0.5), "fc2": w(), "lif2": lif(3, 2e-3, 0.5), "fc3": w(),
             "skip": nir.Scale(scale=np.array([0.5, 0.75, 1.0])), "short": w(), "lif_short": lif(3, 2e-3, 0.5),
             "sum": lif(3, 2e-3, 0.7), "output": out, "out_short": nir.Output(output_type={"output": np.array([3])})}
    edges = (chain(["input", "fc1", "lif1", "fc2", "lif2", "fc3", "sum", "output"]) + chain(["lif1", "skip", "sum"])
             + [("lif1", "sum")] + chain(["input", "short", "sum"]) + chain(["short", "lif_short", "out_short"]))
    if loop:
        nodes.update(back1=w(), lif_back=lif(3, 2e-3, 0.5), back2=w())
        edges += chain(["sum", "back1", "lif_back", "back2", "sum"])
    return lower_nodes(nodes, edges, dt=1e-3, reset="subtract")


def lava_processes() -> set[int]:
    """Pids of our Lava child processes and of the processes Lava forked from them (same command line)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if CHILD_MODULE.encode() in (entry / "cmdline").read_bytes() and int(entry.name) != os.getpid():
                    found.add(int(entry.name))
            except OSError:  # it ended while we looked
                continue
    return found
