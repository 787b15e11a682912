"""`Graph`: a NIR graph as read, flattened into one namespace, with order, recurrence, fan-in and shapes.

Nothing here knows dt or a backend. Subgraphs are flattened by prefixing their node names with
`<subgraph>.`; an edge into a subgraph goes to its Input node(s), an edge out of it leaves its Output
node(s), and those inner Input/Output nodes are spliced out so they cost nothing at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nir

from spikestack.errors import GraphValidationError
from spikestack.ir.primitives import Primitive, kind_of, primitive
from spikestack.ir.shapes import Shape, declared_shape


@dataclass(frozen=True)
class Graph:
    """The flat, ordered, shaped view of a NIR graph that every stage reads."""

    nodes: dict[str, nir.NIRNode]
    edges: tuple[tuple[str, str], ...]
    order: tuple[str, ...]  # topological order ignoring back edges; inputs first
    back_edges: frozenset[tuple[str, str]]  # recurrent edges: they carry a one-step delay
    fan_in: dict[str, tuple[str, ...]]  # sources of each node (several are summed)
    in_shapes: dict[str, Shape]
    out_shapes: dict[str, Shape]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    metadata: dict = field(default_factory=dict)

    def type_of(self, name: str) -> str:
        return kind_of(self.nodes[name])

    def primitive(self, name: str) -> Primitive:
        """What node `name` is (`ir.primitives`)."""
        return primitive(self.type_of(name), name)

    def fan_out(self, name: str) -> tuple[str, ...]:
        return tuple(dst for src, dst in self.edges if src == name)

    def cycles(self) -> list[list[str]]:
        """For each back edge (u, v): the cycle v -> ... -> u -> v along forward edges."""
        found = []
        for u, v in sorted(self.back_edges):
            path = _forward_path(self, v, u)
            found.append(path + [v] if path else [v, u, v])
        return found


def _forward_path(graph: Graph, start: str, goal: str) -> list[str]:
    stack, seen = [(start, [start])], {start}
    while stack:
        node, path = stack.pop()
        if node == goal:
            return path
        for nxt in graph.fan_out(node):
            if (node, nxt) not in graph.back_edges and nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return []


def flatten_graph(graph: nir.NIRGraph, prefix: str = "") -> tuple[dict, list, list, list]:
    """Return (nodes, edges, inputs, outputs) of one flat namespace; subgraph I/O spliced out."""
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}  # subgraph name -> its inner first nodes
    exit_: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges, sub_in, sub_out = flatten_graph(node, prefix=full + ".")
            nodes.update(sub_nodes)
            edges.extend(sub_edges)
            entry[name], exit_[name] = sub_in, sub_out
        else:
            nodes[full] = node
    where = prefix.rstrip(".") or "graph"
    seen: set[tuple[str, str]] = set()
    for src, dst in graph.edges:
        for end in (src, dst):
            if end not in graph.nodes:
                raise GraphValidationError(f"{where}: edge {src} -> {dst} refers to missing node '{end}'")
        if (src, dst) in seen:  # summed twice, it would double what dst receives from src
            raise GraphValidationError(f"{where}: edge {src} -> {dst} appears twice")
        seen.add((src, dst))
        srcs = exit_.get(src, [prefix + src])
        dsts = entry.get(dst, [prefix + dst])
        edges.extend((s, d) for s in srcs for d in dsts)
    inputs = [prefix + n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
    outputs = [prefix + n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]
    if prefix:  # splice the subgraph's own Input/Output nodes: callers connect through them
        nodes, edges, inputs, outputs = _splice_io(nodes, edges, inputs, outputs)
    return nodes, edges, inputs, outputs


def _splice_io(nodes, edges, inputs, outputs):
    """Replace inner Input/Output nodes by the nodes they connect to."""
    first = sorted({d for s, d in edges if s in inputs})
    last = sorted({s for s, d in edges if d in outputs})
    io = set(inputs) | set(outputs)
    kept = [(s, d) for s, d in edges if s not in io and d not in io]
    through = [(s, d) for s, d in edges if s in inputs and d in outputs]
    if through:
        raise GraphValidationError(f"subgraph input {through[0][0]} connects straight to its output")
    return {n: v for n, v in nodes.items() if n not in io}, kept, first, last


def _order(nodes, edges, inputs) -> tuple[list[str], set[tuple[str, str]]]:
    """Depth-first from the inputs: an edge into a node still on the stack is a back edge."""
    children: dict[str, list[str]] = {n: [] for n in nodes}
    for s, d in edges:
        children[s].append(d)
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    post, back = [], set()
    roots = list(inputs) + sorted(n for n in nodes if n not in inputs)
    for root in roots:
        if root in state:
            continue
        stack = [(root, iter(children[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                state[node] = 2
                post.append(node)
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(children[nxt])))
    return post[::-1], back


def _named(name: str, fn):
    """fn(), with a GraphValidationError from a shape rule given the name of the node at fault."""
    try:
        return fn()
    except GraphValidationError as exc:
        raise GraphValidationError(str(exc), node=name) from None


def _infer_shapes(nodes, order, fan_in, inputs):
    in_shapes: dict[str, Shape] = {}
    out_shapes: dict[str, Shape] = {}
    for name in inputs:  # Input types may be missing: fall back to the consumers' hints
        shape = _named(name, lambda: declared_shape((nodes[name].input_type or {}).get("input"), "shape"))
        if shape is None:
            consumers = [d for d, srcs in fan_in.items() if name in srcs]
            hints = [_named(c, lambda c=c: primitive(kind_of(nodes[c]), c).shape.hint(nodes[c])) for c in consumers]
            shape = next((h for h in hints if h is not None), None)
        if shape is None:
            raise GraphValidationError("input shape unknown: the Input node has no type and no consumer implies one", node=name)
        in_shapes[name] = shape
    for name in order:
        node = nodes[name]
        rule = primitive(kind_of(node), name).shape
        if name not in in_shapes:
            known = [out_shapes[s] for s in fan_in[name] if s in out_shapes]
            if not known:  # only reached through back edges: trust the node's own parameters
                hint = _named(name, lambda: rule.hint(node))
                if hint is None:
                    raise GraphValidationError("input shape cannot be inferred", node=name)
                known = [hint]
            for other in known[1:]:
                if other != known[0]:
                    raise GraphValidationError(f"inputs of different shapes {known[0]} and {other} meet here", node=name)
            in_shapes[name] = known[0]
        out_shapes[name] = _named(name, lambda: rule.output(node, in_shapes[name]))
        if not all(d >= 1 for d in out_shapes[name]):  # e.g. an Input shape implied by a consumer
            raise GraphValidationError(f"output shape {out_shapes[name]} has an empty or negative dimension", node=name)
    for name in order:  # back edges carry shapes too
        for src in fan_in[name]:
            if out_shapes[src] != in_shapes[name]:
                raise GraphValidationError(f"edge {src} -> {name}: shape mismatch, {src} gives {out_shapes[src]} but {name} takes {in_shapes[name]}", node=name)
    return in_shapes, out_shapes


def build_graph(graph: nir.NIRGraph) -> Graph:
    """Flatten, order and shape a `nir.NIRGraph`. Raises a `SpikestackError` naming the node at fault."""
    nodes, edges, inputs, outputs = flatten_graph(graph)
    if not nodes:
        raise GraphValidationError("graph is empty: it has no nodes")
    if not inputs:
        raise GraphValidationError("graph has no Input node")
    if not outputs:
        raise GraphValidationError("graph has no Output node")
    order, back = _order(nodes, edges, inputs)
    fan_in = {n: tuple(s for s, d in edges if d == n) for n in nodes}
    for name in order:
        if name not in inputs and not fan_in[name]:
            raise GraphValidationError("node has no incoming edge", node=name)
    in_shapes, out_shapes = _infer_shapes(nodes, order, fan_in, inputs)
    return Graph(
        nodes=nodes, edges=tuple(edges), order=tuple(order), back_edges=frozenset(back), fan_in=fan_in,
        in_shapes=in_shapes, out_shapes=out_shapes, inputs=tuple(inputs), outputs=tuple(outputs),
        metadata=dict(getattr(graph, "metadata", {}) or {}),
    )
