"""Writing NIR that another library runs as our simulator runs it: `spikestack export --for TARGET`.

Each target is one module (`snntorch.py`, `norse.py`, `sinabs.py`, `rockpool.py`) exposing
`write_for(graph: Graph, program: Program) -> nir.NIRGraph`: from our validated graph and the
Program our simulator runs (its `NeuronCoefficients` say exactly what each neuron does), the graph
in the fields and layout that the target's own importer reads into the same dynamics (reset, dt,
r, w_in, threshold comparison, recurrence). What the target cannot express is refused with an
`UnsupportedError` naming the node, never written approximately. `tests/peers/` imports each
written file with the target's own importer and runs it with the target's own runtime.
"""

from __future__ import annotations

from importlib import import_module

import nir

from spikestack.errors import OptionsError
from spikestack.ir.graph import Graph
from spikestack.ir.program import Program

TARGETS = ("snntorch", "norse", "sinabs", "rockpool")


def write_for(graph: Graph, program: Program, target: str) -> nir.NIRGraph:
    """`graph` (lowered as `program`) in `target`'s conventions; see the module docstring."""
    if target not in TARGETS:
        raise OptionsError(f"unknown export target '{target}'; choose one of {', '.join(TARGETS)}")
    return import_module(f"spikestack.ir.targets.{target}").write_for(graph, program)
