"""Validation of a built `Graph`: one clear error per problem, naming the node and the field.

Shape and edge problems are caught while the graph is built (graph.py); here we check what shapes
cannot: parameter values, and topology that no executor can run.
"""

from __future__ import annotations

import os

import numpy as np

from spikestack.errors import GraphValidationError, SpikestackError
from spikestack.ir.graph import NEURON_TYPES, Graph, build_graph
from spikestack.ir.io import read_nir

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
        if graph.type_of(dst) == "Input":
            raise GraphValidationError(f"edge {src} -> {dst} points into an Input node", node=dst)
        if graph.type_of(src) == "Output":
            raise GraphValidationError(f"edge {src} -> {dst} leaves an Output node", node=src)
    for cycle in graph.cycles():
        # A loop needs state to be a recurrence rather than an equation with no solution order.
        if not any(graph.type_of(n) in NEURON_TYPES or graph.type_of(n) == "Delay" for n in cycle):
            raise GraphValidationError(f"cycle {' -> '.join(cycle)} contains no neuron", node=cycle[0])


def validate_graph(graph: Graph) -> Graph:
    """Raise a `GraphValidationError` for the first problem found; return the graph unchanged."""
    for name in graph.order:
        _check_parameters(name, graph.nodes[name])
    _check_topology(graph)
    return graph


def load_graph(path: str | os.PathLike) -> Graph:
    """Read, build and validate a `.nir` file: the one entry point every stage uses."""
    nir_graph = read_nir(path)  # its errors already name the file
    try:
        return validate_graph(build_graph(nir_graph))
    except SpikestackError as exc:
        raise type(exc)(f"{path}: {exc}") from None
