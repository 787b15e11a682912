"""NIR files as plain trees, so a fuzzer can break them anywhere and still write them with h5py.

A tree is a dict: name -> sub-tree (an HDF5 group), a value (a dataset: numpy array, scalar, str,
bytes) or a link. `write_tree` writes it as it is, wrong dtypes and dangling links included: the
point is to write what `nir.write` never would. `chain_graph` makes the well-formed starting point
(the layout `nir.write` uses), so that mutations land one step away from a valid graph and reach the
deep stages (shapes, lowering, simulation) rather than stopping at the first check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

VLEN_BYTES = h5py.string_dtype("utf-8")


@dataclass(frozen=True)
class SoftLink:
    path: str  # may point nowhere, or at an ancestor (a cycle)


@dataclass(frozen=True)
class ExternalLink:
    filename: str
    path: str


@dataclass(frozen=True)
class HardLink:
    path: str  # an existing object, made a second name of it (an ancestor makes a cycle)


LINKS = (SoftLink, ExternalLink, HardLink)


def write_tree(path: Path, tree: dict) -> None:
    """Write `tree` under the file's root; hard links are made last, once their targets exist."""
    hard: list[tuple[h5py.Group, str, str]] = []
    with h5py.File(path, "w") as f:
        _write_group(f, tree, hard)
        for group, name, target in hard:
            try:
                obj = f[target]
            except (KeyError, OSError, ValueError):
                continue  # the target is missing, or behind a dangling or external link: no second name
            if name not in group:
                group[name] = obj


def _write_group(group: h5py.Group, tree: dict, hard: list) -> None:
    for name, value in tree.items():
        if isinstance(value, dict):
            _write_group(group.create_group(name), value, hard)
        elif isinstance(value, SoftLink):
            group[name] = h5py.SoftLink(value.path)
        elif isinstance(value, ExternalLink):
            group[name] = h5py.ExternalLink(value.filename, value.path)
        elif isinstance(value, HardLink):
            hard.append((group, name, value.path))
        elif isinstance(value, str):
            group.create_dataset(name, data=value, dtype=VLEN_BYTES)
        elif isinstance(value, bytes):  # fixed length: the only kind that holds any byte, NUL included
            group.create_dataset(name, data=np.array(value, dtype=f"S{max(1, len(value))}"))
        else:
            group.create_dataset(name, data=value)


def paths(tree: dict, prefix: str = "") -> list[str]:
    """Every entry's path, groups before their members, in a stable order."""
    out = []
    for name in sorted(tree):
        full = f"{prefix}/{name}"
        out.append(full)
        if isinstance(tree[name], dict):
            out.extend(paths(tree[name], full))
    return out


def parent_of(tree: dict, path: str) -> tuple[dict, str]:
    *head, last = path.strip("/").split("/")
    group = tree
    for part in head:
        group = group[part]
    return group, last


def edges_array(edges: list[tuple[str, str]]) -> np.ndarray:
    return np.array(edges, dtype=object).astype(VLEN_BYTES) if edges else np.zeros((0, 2), dtype=VLEN_BYTES)


# ---------------------------------------------------------------- a well-formed graph, layer by layer

NEURONS = {  # NIR field names; v_reset and w_in are optional in NIR
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "I": ("r",),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
}
TYPICAL = {"tau": 0.02, "tau_syn": 0.01, "tau_mem": 0.02, "r": 1.0, "v_leak": 0.0, "v_threshold": 1.0,
           "v_reset": 0.0, "w_in": 1.0, "scale": 0.5, "threshold": 0.5, "delay": 0.002}


def _values(rng: np.random.Generator, field: str, shape) -> np.ndarray:
    base = TYPICAL[field]
    jitter = rng.uniform(0.5, 1.5, size=shape) if base else rng.normal(0, 0.1, size=shape)
    return (base * jitter if base else jitter).astype(np.float32 if rng.random() < 0.5 else np.float64)


def pointwise(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> dict:
    """A neuron, Scale, Threshold or Delay over `shape` (parameters scalar one time in four)."""
    pshape = () if rng.random() < 0.25 else shape
    fields = NEURONS.get(kind) or {"Scale": ("scale",), "Threshold": ("threshold",), "Delay": ("delay",)}[kind]
    node = {"type": kind}
    for field in fields:
        if field in ("v_reset", "w_in") and rng.random() < 0.3:
            continue  # optional in NIR
        node[field] = _values(rng, field, pshape)
    return node


def layer(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> tuple[dict, tuple[int, ...]]:
    """One node of `kind` taking `shape`; returns (fields, output shape)."""
    if kind in ("Affine", "Linear"):
        out = int(rng.integers(1, 6))
        node = {"type": kind, "weight": rng.normal(0, 1, (out, shape[-1])).astype(np.float32)}
        if kind == "Affine":
            node["bias"] = rng.normal(0, 0.1, out).astype(np.float32)
        return node, (out,)
    if kind in ("Conv1d", "Conv2d"):
        nd = len(shape) - 1
        k, s, p, d = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(0, 2)), 1
        k = min(k, min(shape[1:]) + 2 * p)
        out_ch = int(rng.integers(1, 4))
        spatial = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in shape[1:])
        node = {"type": kind, "weight": rng.normal(0, 1, (out_ch, shape[0]) + (k,) * nd).astype(np.float32),
                "bias": np.zeros(out_ch, np.float32), "groups": np.int64(1),
                "stride": np.full(nd, s), "padding": np.full(nd, p), "dilation": np.full(nd, d),
                "input_shape": np.array(shape[1:]) if nd == 2 else np.int64(shape[1])}
        return node, (out_ch,) + spatial
    if kind in ("SumPool2d", "AvgPool2d"):
        k = int(min(2, *shape[1:]))
        node = {"type": kind, "kernel_size": np.array([k, k]), "stride": np.array([k, k]), "padding": np.zeros(2, np.int64)}
        return node, (shape[0], shape[1] // k, shape[2] // k)
    if kind == "Flatten":
        node = {"type": kind, "input_type": np.array(shape), "start_dim": np.int64(0), "end_dim": np.int64(-1)}
        return node, (int(np.prod(shape)),)
    return pointwise(rng, kind, shape), shape


def kinds_for(shape: tuple[int, ...]) -> list[str]:
    point = ["LIF", "IF", "LI", "I", "CubaLIF", "CubaLI", "Scale", "Threshold", "Delay"]
    return point + {1: ["Affine", "Linear"] * 3, 2: ["Conv1d"] * 3, 3: ["Conv2d", "SumPool2d", "AvgPool2d", "Flatten"] * 2}[len(shape)]


def chain_graph(seed: int, depth: int, rank: int) -> tuple[dict, list[tuple[str, str]], list[tuple[int, ...]]]:
    """Input -> `depth` random layers -> Output: (nodes, edges, the shape entering each node)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 5, rank))
    nodes = {"input": {"type": "Input", "shape": np.array(shape)}}
    names, shapes = ["input"], [shape]
    for i in range(depth):
        kind = str(rng.choice(kinds_for(shape)))
        nodes[f"n{i}"], out = layer(rng, kind, shape)
        names.append(f"n{i}")
        shapes.append(shape)
        shape = out
    nodes["output"] = {"type": "Output", "shape": np.array(shape)}
    names.append("output")
    shapes.append(shape)
    return nodes, list(zip(names, names[1:])), shapes


def graph_tree(nodes: dict, edges: list[tuple[str, str]], metadata: dict | None = None) -> dict:
    """The file's tree, laid out as `nir.write` lays it out."""
    graph = {"type": "NIRGraph", "nodes": nodes, "edges": edges_array(edges)}
    if metadata is not None:
        graph["metadata"] = metadata
    return {"node": graph, "version": "1.0.8"}
