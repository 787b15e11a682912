"""Reading and writing `.nir` (HDF5) files, with one clear error per problem.

We parse the HDF5 tree ourselves and build each node through the `nir` package's own constructors,
one node at a time, so a bad file names the node and field at fault instead of surfacing an h5py or
dataclass traceback. Files are only ever opened read-only; writing goes through a temporary file.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import nir
import numpy as np

from spikestack.errors import GraphFileError, GraphValidationError, ResourceLimitError, UnsupportedError
from spikestack.ir.hdf5 import read_tree
from spikestack.ir.hdf5_reader import read_in_child
from spikestack.ir.primitives import PRIMITIVES
from spikestack.outputs import write_atomically

SUBGRAPH = "NIRGraph"  # a node that is a graph of its own: read recursively


def _decode_edges(raw, where: str) -> list[tuple[str, str]]:
    try:
        arr = np.asarray(raw)
        if arr.size == 0:
            return []
        pairs = arr.reshape(-1, 2)
    except (ValueError, TypeError):
        raise GraphFileError(f"{where}: edges are not a list of (source, target) pairs") from None
    # A name that is not UTF-8 (a damaged file) keeps its bytes visible and names no node: the
    # missing-node check then reports the edge.
    decode = lambda v: v.decode("utf8", errors="backslashreplace") if isinstance(v, bytes) else str(v)  # noqa: E731
    return [(decode(a), decode(b)) for a, b in pairs]


def node_from_dict(name: str, data: dict) -> nir.NIRNode:
    """Build one NIR node (recursively for subgraphs), naming the node on any failure."""
    if not isinstance(data, dict) or "type" not in data:
        raise GraphFileError("has no 'type' field", node=name)
    kind = data["type"]
    if not isinstance(kind, str):  # an array or a group: not hashable, not a type name
        raise GraphFileError(f"field 'type' must be a string, got {type(kind).__name__}", node=name)
    if kind not in PRIMITIVES and kind != SUBGRAPH:
        raise UnsupportedError(f"unknown node type '{kind}'", node=name)
    fields = dict(data)
    if kind == SUBGRAPH:
        return graph_from_dict(fields, prefix=f"{name}.")
    fields.setdefault("metadata", {})
    for key in ("input_type", "output_type"):  # Input/Output carry their shapes in a nested dict
        if isinstance(fields.get(key), dict):
            fields[key] = {k: np.asarray(v) for k, v in fields[key].items()}
    try:
        return getattr(nir, kind).from_dict(fields)
    except TypeError as exc:
        text = str(exc)
        if "missing" in text:  # "__init__() missing 1 required positional argument: 'weight'"
            reason = f"missing required field {text.rsplit(':', 1)[-1].strip()}"
        else:  # "__init__() got an unexpected keyword argument 'foo'"
            reason = f"unexpected field {text.rsplit(' ', 1)[-1]}"
        raise GraphFileError(f"{kind}: {reason}", node=name) from None
    except (ValueError, AssertionError, KeyError, AttributeError, IndexError, ArithmeticError) as exc:
        raise GraphValidationError(f"{kind} parameters are inconsistent ({exc or 'shape check failed'})", node=name) from None


def graph_from_dict(data: dict, prefix: str = "") -> nir.NIRGraph:
    where = prefix.rstrip(".") or "graph"
    if not isinstance(data.get("nodes"), dict):
        raise GraphFileError(f"{where}: no 'nodes' group")
    nodes = {str(name): node_from_dict(prefix + str(name), nd) for name, nd in data["nodes"].items()}
    edges = _decode_edges(data.get("edges", []), where)
    # type_check=False: NIR's own inference fails on valid graphs (scalars, partial Input types);
    # our shape inference in graph.py replaces it.
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=data.get("metadata", {}), type_check=False)


def read_hdf5_tree(path: str | os.PathLike, key: str, what: str) -> dict:
    """The group `key` of an HDF5 file as nested dicts, every hostile-file check applied (hdf5.py);
    `what` names the file kind in messages ("a NIR graph")."""
    path = Path(path)
    if not path.exists():
        raise GraphFileError(f"{path}: no such file")
    if path.is_dir():
        raise GraphFileError(f"{path}: is a directory, not {what}")
    if path.stat().st_size == 0:
        raise GraphFileError(f"{path}: file is empty")
    read_in_child(str(path))  # a damaged heap can hang HDF5 itself: meet that in a child (hdf5.py)
    try:
        with h5py.File(path, "r") as f:
            if key not in f and f.get(key, getlink=True) is None:
                raise GraphFileError(f"HDF5 file has no '{key}' group; not {what}")
            return read_tree(f, key)  # links, dataset types and sizes checked before reading
    except (GraphFileError, ResourceLimitError) as exc:
        raise type(exc)(f"{path}: {exc}") from None
    except OSError as exc:
        reason = "not an HDF5 file" if "signature" in str(exc) else "truncated or corrupt HDF5 file"
        raise GraphFileError(f"{path}: {reason} ({str(exc).splitlines()[0][:120]})") from None
    except (RuntimeError, KeyError, ValueError) as exc:
        raise GraphFileError(f"{path}: unreadable HDF5 content ({str(exc)[:120]})") from None


def read_nir(path: str | os.PathLike) -> nir.NIRGraph:
    """Read a `.nir` file into a `nir.NIRGraph` without modifying it."""
    data = read_hdf5_tree(path, "node", "a NIR graph")
    if not isinstance(data.get("type"), str) or data["type"] != "NIRGraph":
        raise GraphFileError(f"{path}: top-level node is '{str(data.get('type'))[:40]}', expected a NIRGraph")
    try:
        return graph_from_dict(data)
    except GraphFileError as exc:
        raise type(exc)(f"{path}: {exc}") from None


def write_nir(graph: nir.NIRGraph, path: str | os.PathLike) -> Path:
    """Write a graph to `path` atomically: a failure leaves no partial file and any old one intact."""
    return write_atomically(path, lambda tmp: nir.write(tmp, graph))
