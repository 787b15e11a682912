"""Counts of a Lava run: `ir.counts` applied to what every op received and sent, as recorded.

Each op's output comes from the traces (neurons' spikes or voltages, connections' a_out, the
input itself); an op received the sum of its sources' outputs. Float mode reads back edges one
step old, as the simulator's float mode; loihi mode counts what Lava delivers, where the synapse
on a back edge is its only delay. What each array holds (binary spikes, spike counts or graded
values) is `Program.event_kinds`, as in the simulator's executor: spiking neurons send binary
spikes (counts when several per step), a sum pool of spikes sends counts in float mode, everything
else is graded. One approximation: an Affine whose Delay op
was folded into its DelayDense (lower.py) has only its delayed output on Lava, so its events sent
are counted when they arrive, d steps late.
"""

from __future__ import annotations

import numpy as np

from spikestack.ir.counts import OpCounter, infer_kind
from spikestack.ir.program import Program, combine_kinds
from spikestack.ir.run import Counts


def _delayed(values: np.ndarray, steps: int) -> np.ndarray:
    """values (T, ...) seen `steps` steps later, zero before."""
    out = np.zeros_like(values)
    if steps < len(values):
        out[steps:] = values[: len(values) - steps]
    return out


def count_run(program: Program, outputs: dict[str, np.ndarray], mode: str) -> Counts:
    """outputs: every op's output (T, B, *out_shape). Returns per-op, per-metric (T, B) counts."""
    x = outputs[program.inputs[0]]
    kinds = program.event_kinds({program.inputs[0]: infer_kind(x)}, pools_count=mode == "float")
    per_node = {}
    for op in program.ops:
        received = None
        if op.sources:
            parts = [_delayed(outputs[s.name], s.delay if mode == "float" else 0) for s in op.sources]
            received = np.sum(parts, axis=0) if len(parts) > 1 else parts[0]
        input_kind = combine_kinds([kinds[s.name] for s in op.sources]) if op.sources else None
        per_node[op.name] = OpCounter(op)(received, outputs[op.name], input_kind=input_kind,
                                          output_kind=kinds[op.name])
    return Counts(per_node)
