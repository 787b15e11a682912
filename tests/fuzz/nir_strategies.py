"""Hypothesis strategies: NIR files broken in structure, values, dtypes and links, and byte mutations.

`nir_cases()` draws a well-formed graph (`nir_trees.chain_graph`, optionally with a skip edge, a
recurrent edge, a subgraph and lowering metadata) and then up to four mutations of its HDF5 tree.
`byte_mutations()` draws edits of a file's bytes. Arrays come from a drawn seed, not element by
element: hypothesis explores the choices, numpy fills the values, and examples stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from nir_trees import ExternalLink, HardLink, SoftLink, chain_graph, edges_array, graph_tree, parent_of, paths

BIG = 2**40


@dataclass
class NirCase:
    tree: dict
    input_shape: tuple[int, ...]  # the shape the unmutated graph takes (what `run` feeds it)


# ---------------------------------------------------------------- odd values for any dataset

def _structured():
    return np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])


ODD_VALUES = [
    lambda: np.float64(np.nan), lambda: np.float64(np.inf), lambda: np.float64(-np.inf), lambda: np.float64(0.0),
    lambda: np.float64(-1.0), lambda: np.float64(1e308), lambda: np.float64(-1e-320), lambda: np.int64(0),
    lambda: np.int64(-3), lambda: np.int64(2**62), lambda: np.int64(BIG), lambda: np.float64(0.5), lambda: np.bool_(True),
    lambda: np.array([np.nan, 1.0]), lambda: np.array([1.0, np.inf, -np.inf]), lambda: np.zeros(0),
    lambda: np.zeros((0, 3)), lambda: np.ones((2, 3, 1, 1, 2)), lambda: np.ones((1, 1)), lambda: np.ones(7) * -2,
    lambda: np.array([1 + 2j]), lambda: np.complex128(1j), lambda: _structured(), lambda: np.array([True, False]),
    lambda: np.float16(65504), lambda: np.uint8(255), lambda: np.int8(-128), lambda: np.uint64(2**64 - 1),
    lambda: "text", lambda: "same", lambda: "valid", lambda: b"\xff\xfe\x00", lambda: np.array([b"a", b"bc"]),
    lambda: np.array(["LIF", "IF"], dtype=object).astype("S"), lambda: np.arange(6.0).reshape(2, 3),
    lambda: np.array([0, 0]), lambda: np.array([-1, 2]), lambda: np.array([1.5, 2.5]), lambda: np.array([BIG, BIG]),
]

# Declared shapes (Input/Output "shape", Conv input_shape, Flatten input_type): zero, negative, huge, fractional.
ODD_SHAPES = [
    lambda s: np.array([0]), lambda s: np.array([-3]), lambda s: np.array(s) * -1, lambda s: np.array([BIG]),
    lambda s: np.array([2**31, 2**31]), lambda s: np.array(s, dtype=float) + 0.5, lambda s: np.zeros(0, np.int64),
    lambda s: np.array([s]), lambda s: np.array(list(s) + [0]), lambda s: np.array(list(s) + [1]),
    lambda s: np.float64(np.nan), lambda s: "shape", lambda s: np.array([2**63 - 1]),
]

TYPE_NAMES = ["Quantum", "", "LIF", "IF", "Affine", "Conv2d", "Input", "Output", "NIRGraph", "Flatten", "Delay",
              b"\xff", "lif", "SumPool2d"]


# ---------------------------------------------------------------- mutations of a tree

def _all_paths(tree: dict) -> list[str]:
    return paths(tree) or ["/node"]


def _edges_of(tree: dict) -> list[tuple[str, str]]:
    raw = tree["node"].get("edges") if isinstance(tree.get("node"), dict) else None
    if not isinstance(raw, np.ndarray) or raw.ndim != 2 or raw.shape[1:] != (2,):
        return []
    return [(a.decode() if isinstance(a, bytes) else str(a), b.decode() if isinstance(b, bytes) else str(b)) for a, b in raw]


def _set_edges(tree: dict, edges) -> None:
    if isinstance(tree.get("node"), dict):
        tree["node"]["edges"] = edges_array(edges) if isinstance(edges, list) else edges


@st.composite
def mutate_value(draw, tree: dict) -> None:
    target = draw(st.sampled_from(_all_paths(tree)))
    group, name = parent_of(tree, target)
    group[name] = draw(st.sampled_from(ODD_VALUES))()


@st.composite
def mutate_parameter(draw, tree: dict) -> None:
    """An odd value in a node's own field (mutate_value aims at any entry of the file)."""
    nodes = _nodes(tree)
    fields = sorted((n, f) for n, v in nodes.items() if isinstance(v, dict) for f in v if f != "type")
    if fields:
        name, field = draw(st.sampled_from(fields))
        nodes[name][field] = draw(st.sampled_from(ODD_VALUES))()


@st.composite
def mutate_entry(draw, tree: dict) -> None:
    """Delete an entry, or swap a group for a dataset and back."""
    target = draw(st.sampled_from(_all_paths(tree)))
    group, name = parent_of(tree, target)
    action = draw(st.sampled_from(["delete", "empty_group", "scalar"]))
    if action == "delete":
        group.pop(name, None)
    else:
        group[name] = {} if action == "empty_group" else np.float64(1.0)


@st.composite
def mutate_link(draw, tree: dict) -> None:
    everything = _all_paths(tree)
    target = draw(st.sampled_from(everything))
    group, name = parent_of(tree, target)
    kind = draw(st.sampled_from(["soft", "soft", "external", "hard"]))
    where = draw(st.sampled_from(everything + ["/nowhere", "/node", "/", "/node/nodes"]))
    if kind == "soft":
        group[name] = SoftLink(where)
    elif kind == "external":
        group[name] = ExternalLink(draw(st.sampled_from(["missing.nir", "/dev/null", "."])), where)
    else:
        group[name] = HardLink(where)


@st.composite
def mutate_edges(draw, tree: dict) -> None:
    edges = _edges_of(tree)
    names = sorted(_nodes(tree)) or ["x"]
    action = draw(st.sampled_from(["duplicate", "self_loop", "dangling", "reverse", "drop", "random", "odd_array",
                                   "odd_value"]))
    if action == "duplicate" and edges:
        edges.append(draw(st.sampled_from(edges)))
    elif action == "self_loop":
        n = draw(st.sampled_from(names))
        edges.append((n, n))
    elif action == "dangling":
        edges.append(draw(st.sampled_from([(names[0], "ghost"), ("ghost", names[-1]), ("", ""), ("a.b", names[0])])))
    elif action == "reverse" and edges:
        a, b = draw(st.sampled_from(edges))
        edges.append((b, a))
    elif action == "drop" and edges:
        edges.pop(draw(st.integers(0, len(edges) - 1)))
    elif action == "random":
        edges.append((draw(st.sampled_from(names)), draw(st.sampled_from(names))))
    elif action == "odd_array":
        _set_edges(tree, draw(st.sampled_from([np.zeros((2, 3), "S2"), np.arange(6).reshape(3, 2), np.array([b"a"]),
                                               np.zeros((0,)), np.array(b"input"), np.ones((1, 2, 2), "S1")])))
        return
    elif action == "odd_value":
        _set_edges(tree, draw(st.sampled_from(ODD_VALUES))())
        return
    _set_edges(tree, edges)


def _nodes(tree: dict) -> dict:
    node = tree.get("node")
    nodes = node.get("nodes") if isinstance(node, dict) else None
    return nodes if isinstance(nodes, dict) and nodes else {}


@st.composite
def mutate_type(draw, tree: dict) -> None:
    nodes = _nodes(tree)
    if nodes:
        name = draw(st.sampled_from(sorted(nodes)))
        if isinstance(nodes[name], dict):
            nodes[name]["type"] = draw(st.sampled_from(TYPE_NAMES))


@st.composite
def mutate_shape(draw, tree: dict) -> None:
    nodes = _nodes(tree)
    holders = sorted((n, f) for n, v in nodes.items() if isinstance(v, dict)
                     for f in ("shape", "input_shape", "input_type", "kernel_size", "stride", "padding", "dilation",
                               "groups", "start_dim", "end_dim") if f in v)
    if holders:
        name, field = draw(st.sampled_from(holders))
        current = nodes[name][field]
        shape = tuple(int(x) for x in np.ravel(current)) if isinstance(current, np.ndarray) and current.dtype.kind in "iu" else (1,)
        nodes[name][field] = draw(st.sampled_from(ODD_SHAPES))(shape)


@st.composite
def mutate_extra_field(draw, tree: dict) -> None:
    nodes = _nodes(tree)
    if nodes:
        name = draw(st.sampled_from(sorted(nodes)))
        if isinstance(nodes[name], dict):
            nodes[name][draw(st.sampled_from(["foo", "metadata", "input_type", "output_type", "bias", "type2"]))] = \
                draw(st.sampled_from(ODD_VALUES))()


@st.composite
def mutate_metadata(draw, tree: dict) -> None:
    """Lowering options stored in the graph, as our exporter writes them, with odd values."""
    if not isinstance(tree.get("node"), dict):
        return
    field = draw(st.sampled_from(["dt", "reset", "integration", "initial_potential", "reset_timing", "cuba_order",
                                  "preset", "unknown"]))
    value = draw(st.sampled_from(ODD_VALUES + [lambda: "zero", lambda: "exact", lambda: np.float64(1e-3)]))()
    shape = draw(st.sampled_from(["group", "dataset", "flat"]))
    if shape == "group":
        tree["node"]["metadata"] = {"spikestack": {field: value}}
    elif shape == "dataset":
        tree["node"]["metadata"] = {"spikestack": value}
    else:
        tree["node"]["metadata"] = value


MUTATIONS = [mutate_value, mutate_parameter, mutate_parameter, mutate_entry, mutate_link, mutate_edges, mutate_edges, mutate_type, mutate_shape,
             mutate_shape, mutate_extra_field, mutate_metadata]


# ---------------------------------------------------------------- whole cases

def _wrap_subgraph(nodes: dict, edges: list, shapes: list, start: int, stop: int) -> tuple[dict, list]:
    """Move chain nodes n{start}..n{stop-1} into a subgraph `sub` with its own Input and Output."""
    inner = [f"n{i}" for i in range(start, stop)]
    sub_nodes = {"input": {"type": "Input", "shape": np.array(shapes[start + 1])},
                 "output": {"type": "Output", "shape": np.array(shapes[stop + 1])}}
    sub_nodes.update({n: nodes.pop(n) for n in inner})
    chain = ["input", *inner, "output"]
    sub = {"type": "NIRGraph", "nodes": sub_nodes, "edges": edges_array(list(zip(chain, chain[1:])))}
    nodes["sub"] = sub
    rename = lambda n: "sub" if n in inner else n  # noqa: E731
    outer = [(rename(a), rename(b)) for a, b in edges if not (a in inner and b in inner)]
    return nodes, list(dict.fromkeys(outer))  # two edges into the subgraph are one edge now


def _extra_edges(nodes: dict, edges: list, shapes: list, draw) -> list:
    """A skip edge (two sources summed) or a recurrent edge, where the shapes agree."""
    names = ["input"] + [f"n{i}" for i in range(len(shapes) - 2)] + ["output"]
    outs = shapes[1:] + [shapes[-1]]  # the shape leaving each node
    pairs = [(a, b) for i, a in enumerate(names[:-1]) for j, b in enumerate(names[1:], 1)
             if a != b and j != i + 1 and b in nodes and outs[i] == shapes[j] and nodes[b].get("type") != "Input"]
    if pairs:
        edges = edges + [draw(st.sampled_from(pairs))]
    return edges


@st.composite
def nir_cases(draw) -> NirCase:
    seed = draw(st.integers(0, 2**32 - 1))
    rank = draw(st.sampled_from([1, 1, 1, 2, 3, 3]))
    depth = draw(st.integers(0, 5))
    nodes, edges, shapes = chain_graph(seed, depth, rank)
    if depth and draw(st.booleans()):
        edges = _extra_edges(nodes, edges, shapes, draw)
    if depth >= 1 and draw(st.integers(0, 3)) == 0:
        start = draw(st.integers(0, depth - 1))
        nodes, edges = _wrap_subgraph(nodes, edges, shapes, start, draw(st.integers(start + 1, depth)))
    metadata = {"spikestack": {"dt": np.float64(1e-3)}} if draw(st.booleans()) else None
    tree = graph_tree(nodes, edges, metadata)
    for _ in range(draw(st.integers(0, 4))):
        if tree:
            draw(draw(st.sampled_from(MUTATIONS))(tree))
    return NirCase(tree, shapes[0])


# ---------------------------------------------------------------- byte mutations

@dataclass(frozen=True)
class ByteEdit:
    kind: str  # flip, set, insert, delete, truncate
    offset: int  # a fraction of the file's length, in millionths (so edits fit any file)
    data: bytes


# Mostly edits that keep the file the same length, so that many still open and reach the reader's
# later checks; truncation (which HDF5 reports at once) is one edit in nine.
byte_edits = st.builds(
    ByteEdit,
    kind=st.sampled_from(["flip"] * 3 + ["set"] * 3 + ["insert", "delete", "truncate"]),
    offset=st.one_of(st.integers(0, 10**6), st.integers(0, 4096)),  # anywhere, or among the first headers
    data=st.binary(min_size=1, max_size=16),
)


def apply_edits(blob: bytes, edits: list[ByteEdit]) -> bytes:
    out = bytearray(blob)
    for e in edits:
        if not out:
            break
        at = e.offset if e.offset < 4096 and e.offset < len(out) else e.offset * len(out) // 10**6
        at = min(at, len(out) - 1)
        if e.kind == "flip":
            out[at] ^= 1 << (e.data[0] % 8)
        elif e.kind == "set":
            out[at:at + len(e.data)] = e.data
        elif e.kind == "insert":
            out[at:at] = e.data
        elif e.kind == "delete":
            del out[at:at + len(e.data)]
        else:
            del out[at:]
    return bytes(out)
