"""`describe_graph`: what `spikestack info` prints — nodes, shapes, sizes and recurrence of a graph."""

from __future__ import annotations

import math

import numpy as np

from spikestack.ir.graph import Graph

# Fields that are learned or chosen per element; shape/stride fields are not parameters.
STRUCTURAL_FIELDS = frozenset({"input_shape", "stride", "padding", "dilation", "groups", "kernel_size", "start_dim", "end_dim"})


def parameter_count(node) -> int:
    total = 0
    for field, value in vars(node).items():
        if field in STRUCTURAL_FIELDS or field in ("metadata", "input_type", "output_type"):
            continue
        if isinstance(value, (np.ndarray, int, float, np.number)) and not isinstance(value, bool):
            total += int(np.size(value))
    return total


def describe_graph(graph: Graph) -> dict:
    """A JSON-ready summary of a validated graph."""
    nodes = []
    for name in graph.order:
        kind = graph.type_of(name)
        nodes.append({
            "name": name,
            "type": kind,
            "input_shape": list(graph.in_shapes[name]),
            "output_shape": list(graph.out_shapes[name]),
            "parameters": parameter_count(graph.nodes[name]),
            "neurons": math.prod(graph.out_shapes[name]) if graph.primitive(name).is_neuron else 0,  # no int64 wrap
            "inputs": list(graph.fan_in[name]),
        })
    return {
        "nodes": nodes,
        "edges": [list(e) for e in graph.edges],
        "inputs": {n: list(graph.out_shapes[n]) for n in graph.inputs},
        "outputs": {n: list(graph.in_shapes[n]) for n in graph.outputs},
        "recurrent": [{"edge": list(e), "cycle": c} for e, c in zip(sorted(graph.back_edges), graph.cycles())],
        "parameters": sum(n["parameters"] for n in nodes),
        "neurons": sum(n["neurons"] for n in nodes),
        "metadata": {k: str(v) for k, v in graph.metadata.items()},
    }


def format_description(info: dict) -> str:
    """Plain-text table for the terminal."""
    lines = [f"{'node':<16} {'type':<10} {'input':<16} {'output':<16} {'params':>9} {'neurons':>8}"]
    for n in info["nodes"]:
        shape = lambda s: "x".join(map(str, s)) or "-"  # noqa: E731
        lines.append(f"{n['name']:<16} {n['type']:<10} {shape(n['input_shape']):<16} {shape(n['output_shape']):<16} {n['parameters']:>9} {n['neurons']:>8}")
    lines.append(f"inputs:  " + ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in info["inputs"].items()))
    lines.append(f"outputs: " + ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in info["outputs"].items()))
    lines.append(f"parameters: {info['parameters']}   neurons: {info['neurons']}")
    for r in info["recurrent"]:
        lines.append(f"recurrent edge {r['edge'][0]} -> {r['edge'][1]} (cycle {' -> '.join(r['cycle'])})")
    if not info["recurrent"]:
        lines.append("recurrent edges: none")
    return "\n".join(lines)
