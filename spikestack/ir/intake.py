"""NIR graphs as peers hand them to us: in memory from their exporters, with their files' quirks.

Two passes run before a graph is built (`validate.load_graph`):

- `arrays_graph`: a `nir.NIRGraph` made in memory by a peer's exporter holds torch tensors, tuples
  and lists where a file holds arrays; this copies it with numpy arrays everywhere (the caller's
  object is never modified), so an in-memory graph and the same graph read from a file are one.
- `drop_tracing_dim_graph`: exporters that trace the model on a sample write the sample's shape as
  the Input type: Norse 1.1.0, Rockpool 3.1.0 and snnTorch 1.0.0 (without `ignore_dims`) with its
  batch of 1 ([1, N]), Sinabs 3.1.3's plain layers with the time dimension ([T, N]) (see
  `Preset.extra_input_dim`). The rule: under such a preset, the first dimension is dropped where the
  file proves it is extra (below); a batch other than 1 contradicts the preset and is refused.
"""

from __future__ import annotations

import copy

import nir
import numpy as np

from spikestack.errors import GraphValidationError
from spikestack.ir.presets import PRESETS, preset_rules
from spikestack.ir.primitives import PRIMITIVES, kind_of
from spikestack.ir.shapes import PARAMETER_FIELDS

IO_TYPES = ("input_type", "output_type")


def _plain(value):
    """A tensor (CPU or not, with or without grad), tuple or list of numbers as a numpy array."""
    if hasattr(value, "detach"):  # torch, without importing it here
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, np.number)) for v in value):
        return np.asarray(value)
    return value


def arrays_graph(graph: nir.NIRGraph) -> nir.NIRGraph:
    """A copy of `graph` whose node fields (and I/O types) are numpy arrays, subgraphs included."""
    out = copy.copy(graph)
    out.nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            out.nodes[name] = arrays_graph(node)
            continue
        node = copy.copy(node)
        for field, value in list(vars(node).items()):
            if field in IO_TYPES and isinstance(value, dict):
                setattr(node, field, {k: _plain(v) for k, v in value.items()})
            elif field != "metadata":
                setattr(node, field, _plain(value))
        out.nodes[name] = node
    out.edges = [tuple(edge) for edge in graph.edges]
    return out


def _takes(node, shape: tuple[int, ...]) -> bool | None:
    """Whether `node` takes input of `shape`, where its parameters say (None where they do not)."""
    known = PRIMITIVES.get(kind_of(node))
    weight = np.shape(getattr(node, "weight", ()))
    if known is not None and known.is_dense and len(weight) == 2:
        return shape == (weight[1],)  # a dense layer takes a vector
    if known is not None and known.spatial_dims and len(weight) == known.spatial_dims + 2:
        groups = int(np.asarray(getattr(node, "groups", 1) or 1).reshape(-1)[0])
        return len(shape) == known.spatial_dims + 1 and shape[0] == weight[1] * groups
    sizes = [np.shape(v) for f, v in vars(node).items() if f in PARAMETER_FIELDS and np.size(v) > 1]
    return shape == sizes[0] if sizes else None


def drop_tracing_dim_graph(graph: nir.NIRGraph, preset: str | None) -> nir.NIRGraph:
    """Under a preset whose exporter writes its tracing sample's extra leading dimension into Input
    types (`Preset.extra_input_dim`), drop it where the file proves it: every consumer of the Input
    refuses the declared shape and takes it without its first dimension. A batch dimension other
    than 1 contradicts the preset and is refused, naming the node."""
    extra = preset_rules(preset).extra_input_dim
    if not extra:
        return graph
    out = copy.copy(graph)
    out.nodes = dict(graph.nodes)
    for name, node in graph.nodes.items():
        shape = np.asarray((getattr(node, "input_type", None) or {}).get("input", [])) if isinstance(node, nir.Input) else None
        if shape is None or shape.ndim != 1 or shape.size < 2:
            continue
        declared = tuple(int(d) for d in shape)
        consumers = [graph.nodes[d] for s, d in graph.edges if s == name and d in graph.nodes]
        if not consumers or any(_takes(c, declared) is not False or _takes(c, declared[1:]) is not True
                                for c in consumers):
            continue
        if extra == "batch" and declared[0] != 1:
            raise GraphValidationError(
                f"Input type {list(declared)} has a leading dimension of {declared[0]} that its consumers do not "
                f"take, where {preset} {PRESETS[preset].release}'s exporter writes a batch of 1: is this file "
                f"from {preset}?", node=name)
        node = copy.copy(node)
        node.input_type = {"input": np.array(declared[1:])}
        out.nodes[name] = node
    return out
