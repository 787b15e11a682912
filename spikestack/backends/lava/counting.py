"""Counts of a Lava run: `ir.counts` applied to what every op received and sent, as recorded.

Each op's output comes from the traces (neurons' spikes or voltages, connections' a_out, the
input itself); an op received the sum of its sources' outputs. Float mode reads back edges one
step old, as the simulator's float mode; fixed mode counts what Lava delivers, where the synapse
on a back edge is its only delay. What each array holds (binary spikes, spike counts or graded
values) follows the simulator's executor: spiking neurons send binary spikes, a sum pool of spikes
sends counts in float mode, everything else is graded. One approximation: an Affine whose Delay op
was folded into its DelayDense (lower.py) has only its delayed output on Lava, so its events sent
are counted when they arrive, d steps late.
"""

from __future__ import annotations

import numpy as np

from spikestack.ir.counts import OpCounter, infer_kind
from spikestack.ir.program import Program
from spikestack.ir.run import Counts

PASS_THROUGH = frozenset({"Flatten", "Delay", "Output"})


def _combine(kinds: list[str]) -> str:
    if "graded" in kinds:
        return "graded"
    return "binary" if kinds == ["binary"] else "counts"


def emitted(op) -> str:
    """What a back-edge source not seen yet emits: a neuron says so; anything else is graded."""
    return op.params.emits if op.is_neuron else "graded"


def output_kinds(program: Program, input_kind: str, pools_count: bool) -> dict[str, str]:
    """What each op emits: "binary", "counts" or "graded" (the simulator's `Executor._kinds`)."""
    kinds: dict[str, str] = {}
    for op in program.ops:
        sources = [kinds.get(s.name) or emitted(program.op(s.name)) for s in op.sources]
        if op.kind == "Input":
            kinds[op.name] = input_kind
        elif op.is_neuron:
            kinds[op.name] = op.params.emits
        elif op.kind in PASS_THROUGH:
            kinds[op.name] = _combine(sources)
        elif op.kind == "SumPool2d" and pools_count and _combine(sources) != "graded":
            kinds[op.name] = "counts"
        else:
            kinds[op.name] = "graded"
    return kinds


def _delayed(values: np.ndarray, steps: int) -> np.ndarray:
    """values (T, ...) seen `steps` steps later, zero before."""
    out = np.zeros_like(values)
    if steps < len(values):
        out[steps:] = values[: len(values) - steps]
    return out


def count_run(program: Program, outputs: dict[str, np.ndarray], mode: str) -> Counts:
    """outputs: every op's output (T, B, *out_shape). Returns per-op, per-metric (T, B) counts."""
    x = outputs[program.inputs[0]]
    kinds = output_kinds(program, infer_kind(x), pools_count=mode == "float")
    per_node = {}
    for op in program.ops:
        received = None
        if op.sources:
            parts = [_delayed(outputs[s.name], s.delay if mode == "float" else 0) for s in op.sources]
            received = np.sum(parts, axis=0) if len(parts) > 1 else parts[0]
        input_kind = _combine([kinds[s.name] for s in op.sources]) if op.sources else None
        per_node[op.name] = OpCounter(op)(received, outputs[op.name], input_kind=input_kind,
                                          output_kind=kinds[op.name])
    return Counts(per_node)
