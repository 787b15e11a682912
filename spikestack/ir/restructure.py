"""`restructure_graph`: residual block restructuring (TTRBR, BRIEF §6.2) as a graph pass.

A converted post-activation residual block sums two inputs in one IF neuron N:

    a_k = IF(c + a)        c = the branch's last synapse op (conv2), a = the shortcut spike train

so every block re-encodes the whole residual stream `a` with N's coarse threshold, and N integrates
a spike train (a threshold-sized kick per spike) plus the branch current: the input variance that
drives the deviation error. For a >= 0 the ReLU splits exactly into pieces that each see one kind
of input:

    relu(c + a) = a + relu(c) - relu(-c) + relu(-c - a)          (check the three cases of c)

The pass removes N and adds three IF populations, P = relu(c) and M = relu(-c) (integrate only the
branch current, through conv2 and a negated copy of it) and Q = relu(value(M) - a) (nonzero only
where the branch clips the block output to zero), plus a sum node `<N>_stream` (a NIR Scale of ones
whose fan-in is a, +P, -M, +Q, each spike weighted by its neuron's threshold). The stream itself
never passes through a neuron again, so it is not re-quantised 20 times in a 20-block net. Rates
are preserved exactly while no population saturates (one spike per step); the new neurons start
with N's threshold and are meant to be re-tuned on calibration data (frontend `tune_thresholds`).

Matched pattern: an IF node whose fan-in is exactly one synapse op (Conv2d/Affine/Linear) and one
*value* of an IF (a Scale fed only by that IF, or a stream node made here). Other nodes, projection
shortcuts (two currents meet) included, are left unchanged. Consumers of N that expected its spikes
(weights folded with N's threshold) now read the stream through Scale(1/theta_N), or folded into
their weights when they are a weighted op fed by N alone.
"""

from __future__ import annotations

import dataclasses

import nir
import numpy as np

from spikestack.errors import UnsupportedError
from spikestack.ir.graph import Graph, build_graph
from spikestack.ir.options import METADATA_KEY
from spikestack.ir.primitives import primitive_of
_DERIVED = ("input_type", "output_type", "metadata")  # recomputed by the node constructors


def _fields(node: nir.NIRNode) -> dict:
    return {f.name: getattr(node, f.name) for f in dataclasses.fields(node) if f.name not in _DERIVED}


def _scaled(node: nir.NIRNode, factor: float, bias: bool = True) -> nir.NIRNode:
    """A copy of a weighted node with its weight (and, if `bias`, its bias) times factor."""
    kw = _fields(node)
    kw["weight"] = np.asarray(kw["weight"]) * np.float32(factor)
    if bias and kw.get("bias") is not None:
        kw["bias"] = np.asarray(kw["bias"]) * np.float32(factor)
    return type(node)(**kw)


def _scale(value, shape) -> nir.Scale:
    return nir.Scale(scale=np.broadcast_to(np.asarray(value, np.float32), shape).copy())


class _Rewriter:
    def __init__(self, graph: Graph):
        self.g = graph
        self.nodes = dict(graph.nodes)
        self.edges = list(graph.edges)
        self.streams: set[str] = set()

    def sources(self, name: str) -> list[str]:
        return [s for s, d in self.edges if d == name]

    def consumers(self, name: str) -> list[str]:
        return [d for s, d in self.edges if s == name]

    def add(self, name: str, node: nir.NIRNode, sources: list[str]) -> str:
        if name in self.nodes:
            raise UnsupportedError(f"cannot add restructured node '{name}': the name is taken")
        self.nodes[name] = node
        self.edges += [(s, name) for s in sources]
        return name

    def shortcut_value(self, name: str) -> str | None:
        """The node if it carries the value of an IF layer's spikes (or a stream); else None."""
        if name in self.streams:
            return name
        node, srcs = self.nodes[name], self.sources(name)
        spikes = isinstance(node, nir.Scale) and len(srcs) == 1 and isinstance(self.nodes[srcs[0]], nir.IF)
        # The split needs a >= 0: spikes weighted by a non-negative value (a threshold).
        return name if spikes and (np.asarray(node.scale) >= 0).all() else None

    def match(self, name: str) -> tuple[str, str] | None:
        """(branch synapse op, shortcut value node) if `name` is a residual sum neuron."""
        srcs = self.sources(name)
        if not isinstance(self.nodes[name], nir.IF) or len(srcs) != 2:
            return None
        for branch, short in (srcs, srcs[::-1]):
            if primitive_of(self.nodes[branch], branch).has_weight_array and self.shortcut_value(short):
                return branch, short
        return None

    def split(self, name: str, branch: str, stream_in: str) -> None:
        node, shape = self.nodes[name], self.g.out_shapes[name]
        theta = np.asarray(node.v_threshold, np.float32)
        neuron = lambda: nir.IF(r=np.asarray(node.r), v_threshold=theta.copy(), v_reset=np.asarray(node.v_reset))  # noqa: E731
        negated = self.add(f"{name}_negbranch", _scaled(self.nodes[branch], -1.0), self.sources(branch))
        pos = self.add(f"{name}_pos", neuron(), [branch])
        neg = self.add(f"{name}_neg", neuron(), [negated])
        minus_a = self.add(f"{name}_minus_shortcut", _scale(-1.0, shape), [stream_in])
        neg_to_clip = self.add(f"{name}_neg_value", _scale(theta, shape), [neg])
        clip = self.add(f"{name}_clip", neuron(), [neg_to_clip, minus_a])
        terms = [stream_in,
                 self.add(f"{name}_pos_value", _scale(theta, shape), [pos]),
                 self.add(f"{name}_neg_minus", _scale(-theta, shape), [neg]),
                 self.add(f"{name}_clip_value", _scale(theta, shape), [clip])]
        stream = self.add(f"{name}_stream", _scale(1.0, shape), terms)
        self.streams.add(stream)
        uniform = bool(np.all(theta == theta.flat[0]))
        for consumer in self.consumers(name):  # they expected N's spikes: give them stream / theta
            what, alone = primitive_of(self.nodes[consumer], consumer), self.sources(consumer) == [name]
            if what.has_weight_array and alone and uniform:
                self.nodes[consumer] = _scaled(self.nodes[consumer], 1.0 / float(theta.flat[0]), bias=False)
                self.edges.append((stream, consumer))
            elif what.is_elementwise and alone and np.array_equal(self.nodes[consumer].scale, theta):
                self.edges += [(stream, c) for c in self.consumers(consumer)]  # it meant N's value: the stream is it
                self.remove(consumer)
            else:
                spikes = self.add(f"{name}_as_spikes_{consumer}", _scale(1.0 / theta, shape), [stream])
                self.edges.append((spikes, consumer))
        self.remove(name)

    def remove(self, name: str) -> None:
        del self.nodes[name]
        self.edges = [(s, d) for s, d in self.edges if name not in (s, d)]


def restructure_graph(graph: nir.NIRGraph | Graph) -> nir.NIRGraph:
    """Split every residual IF sum (identity shortcut) as above; a new graph, metadata kept."""
    flat = graph if isinstance(graph, Graph) else build_graph(graph)
    if flat.back_edges:
        raise UnsupportedError("restructuring handles feed-forward graphs only; this one has recurrent edges")
    rewriter = _Rewriter(flat)
    for name in flat.order:  # topological: a block's shortcut is already a stream when it is reached
        found = rewriter.match(name) if name in rewriter.nodes else None  # a shortcut Scale may be gone
        if found is not None:
            rewriter.split(name, *found)
    metadata = {k: dict(v) if isinstance(v, dict) else v for k, v in flat.metadata.items()}
    metadata.setdefault(METADATA_KEY, {})["restructured"] = True
    return nir.NIRGraph(nodes=rewriter.nodes, edges=rewriter.edges, metadata=metadata, type_check=False)
