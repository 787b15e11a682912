"""Validation of a built `Graph`: one clear error per problem, naming the node and the field.

Shape and edge problems are caught while the graph is built (graph.py); here we check what shapes
cannot: parameter values, and topology that no executor can run.
"""

from __future__ import annotations

import os
from typing import Union

import nir
import numpy as np

from spikestack.errors import GraphFileError, GraphValidationError, OptionsError, SpikestackError
from spikestack.ir.graph import Graph, build_graph
from spikestack.ir.intake import arrays_graph, drop_tracing_dim_graph
from spikestack.ir.io import read_nir
from spikestack.ir.presets import PRESETS

# Fields whose values must be finite numbers; positive where a time constant or similar divides.
POSITIVE_FIELDS = frozenset({"tau", "tau_mem", "tau_syn"})
SKIPPED_FIELDS = frozenset({"metadata", "input_type", "output_type"})


def _check_parameters(name: str, node) -> None:
    for field, value in vars(node).items():
        if field in SKIPPED_FIELDS or value is None or (field == "padding" and isinstance(value, (str, bytes))):
            continue  # a conv's padding may be 'same' or 'valid'; text anywhere else is refused below
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":  # complex, text, structured: no NIR field holds these
            raise GraphValidationError(f"field '{field}' is not a real number (dtype {arr.dtype})", node=name)
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            bad = "NaN" if np.isnan(arr).any() else "inf"
            raise GraphValidationError(f"field '{field}' contains {bad} values", node=name)
        if field in POSITIVE_FIELDS and (arr <= 0).any():
            raise GraphValidationError(f"field '{field}' must be positive, found {arr.min():g}", node=name)


def _check_topology(graph: Graph) -> None:
    for src, dst in graph.edges:
        if graph.primitive(dst).is_input:
            raise GraphValidationError(f"edge {src} -> {dst} points into an Input node", node=dst)
        if graph.primitive(src).is_output:
            raise GraphValidationError(f"edge {src} -> {dst} leaves an Output node", node=src)
    for cycle in graph.cycles():
        # A loop needs state to be a recurrence rather than an equation with no solution order.
        if not any(graph.primitive(n).stateful for n in cycle):
            raise GraphValidationError(f"cycle {' -> '.join(cycle)} contains no neuron", node=cycle[0])


def validate_graph(graph: Graph) -> Graph:
    """Raise a `GraphValidationError` for the first problem found; return the graph unchanged."""
    for name in graph.order:
        _check_parameters(name, graph.nodes[name])
    _check_topology(graph)
    return graph


GraphSource = Union[str, os.PathLike, nir.NIRGraph]  # a .nir file, or a graph a peer's exporter made in memory


def load_graph(source: GraphSource, preset: str | None = None) -> Graph:
    """Read (or take, in memory) a NIR graph, apply the preset's reading rules, build and validate:
    the one entry point every stage uses. A `nir.NIRGraph` from a peer's exporter is copied, never
    modified (`ir.intake`)."""
    in_memory = isinstance(source, nir.NIRGraph)
    if not in_memory and not isinstance(source, (str, os.PathLike)):
        raise GraphFileError(f"a graph is a .nir path or a nir.NIRGraph, not {type(source).__name__}")
    if preset is not None and preset not in PRESETS:
        raise OptionsError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    where = "in-memory graph" if in_memory else str(source)
    try:
        nir_graph = arrays_graph(source) if in_memory else read_nir(source)  # read_nir's errors name the file
        return validate_graph(build_graph(drop_tracing_dim_graph(nir_graph, preset)))
    except SpikestackError as exc:
        if not in_memory and str(exc).startswith(f"{source}: "):
            raise
        raise type(exc)(f"{where}: {exc}") from None
