"""`export --for norse`: NIR that Norse 1.1.0's own importer runs as our simulator runs it.

The reader is `norse.torch.from_nir(nir.read(F))` with its defaults (dt = 1e-3, reset_method =
reset_value): norse/torch/utils/import_nir.py `_import_norse_module` maps each node to a module and
nirtorch 2.6's `GraphExecutor` (nirtorch/graph_executor.py) steps them. Each neuron op is written
from its `NeuronCoefficients` (v <- alpha_v v + gain_v drive + bias_v), so the options that lowered
the graph are honoured; what the importer cannot express exactly is refused naming the node.
Parameters are stored in float32 (as every NIR file); Norse computes in float32.
"""

from __future__ import annotations

from typing import Callable

import nir
import numpy as np

from spikestack.errors import UnsupportedError
from spikestack.ir.graph import Graph
from spikestack.ir.program import NeuronCoefficients, Op, Program
from spikestack.ir.shapes import conv_padding, integers

NORSE_DT = 1e-3  # from_nir's default dt: the per-step leak Norse runs is a = NORSE_DT / tau (tau in seconds)
# GraphExecutor attributes: nirtorch registers each node as a submodule of that name (add_module)
EXECUTOR_ATTRIBUTES = frozenset({"graph", "stateful_modules", "return_state", "execution_order", "training"})


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _same(a: np.ndarray, b) -> bool:
    """Equal to the float32 precision the file stores (an initial potential of 0.2 x threshold 1.0 is
    the v_leak the file writes as float32(0.2))."""
    return bool(np.allclose(a, b, rtol=1e-6, atol=1e-9))


def _neuron(op: Op) -> tuple[nir.NIRNode, np.ndarray]:
    """(the node, the input gain to fold into the op's incoming weights; ones if none)."""
    p: NeuronCoefficients = op.params
    name, shape = op.name, op.out_shape
    refuse = lambda why: UnsupportedError(f"norse's importer {why}", node=name)  # noqa: E731
    if not p.spiking:  # _import_norse_module returns None for LI, CubaLI, I: nirtorch skips the node
        raise refuse(f"has no module for the non-spiking {op.kind} (it maps the node to None and drops it)")
    if p.spikes_per_step != "one":  # functional/heaviside.py heaviside: one 0/1 spike per step
        raise refuse("fires at most one spike per step; this node emits several (spikes_per_step='many')")
    if p.threshold != ">":  # functional/threshold.py -> heaviside: torch.gt(v - v_th, 0)
        raise refuse(f"fires at v > v_threshold; this node fires at v {p.threshold} v_threshold")
    if p.reset != "zero":  # functional/reset.py reset_value is from_nir's (and LIFBoxCell's) default
        raise refuse("resets to a value in the spiking step; this node resets by subtraction")
    if p.reset_timing != "immediate":  # every *_feed_forward_step resets right after the threshold
        raise refuse(f"resets in the spiking step; this node resets in the next one ({p.reset_timing})")
    if not _same(p.v_reset, 0):  # the importer never passes v_reset: IAF/LIFBoxParameters default 0
        worst = np.ravel(p.v_reset)[np.argmax(np.abs(p.v_reset))]
        raise refuse(f"resets to 0 whatever v_reset says; this node resets to {worst:g}")
    ones, threshold = np.ones(shape, np.float32), _f32(p.v_threshold)
    if p.has_current:  # CubaLIF: w_in * x -> LIBoxCell(1/tau_syn, v_leak) -> r * i -> LIFBoxCell(1/tau_mem)
        if p.cuba_order != "current_first":  # the LIFBoxCell integrates the synapse's new output
            raise refuse("feeds a CubaLIF's voltage this step's current; this node uses the previous one")
        a_syn, a_mem = 1 - p.alpha_i, 1 - p.alpha_v
        if (a_syn <= 0).any() or (a_mem <= 0).any():
            raise refuse("leaks by dt/tau per step (Euler); this node's current or voltage does not decay")
        if not (_same(p.bias_v, 0) and _same(p.v_init, 0)):  # v_leak also biases and starts the synapse
            raise refuse("feeds v_leak into the synapse too and starts i and v at v_leak; this node has a bias "
                         "or a nonzero initial potential")
        return nir.CubaLIF(tau_syn=_f32(NORSE_DT / a_syn), tau_mem=_f32(NORSE_DT / a_mem), r=_f32(p.gain_v / a_mem),
                           v_leak=0 * ones, v_threshold=threshold, v_reset=0 * ones, w_in=_f32(p.gain_i / a_syn)), ones
    if (p.alpha_v == 1).all():  # IAFCell (functional/iaf.py iaf_feed_forward_step): v += x, starts at 0
        if not _same(p.bias_v, 0):
            raise refuse("maps IF to IAFCell, which has no bias; this node has one")
        if not _same(p.v_init, 0):
            raise refuse("starts IAFCell at v_reset = 0; this node starts at a nonzero initial potential")
        return nir.IF(r=ones, v_threshold=threshold, v_reset=0 * ones), p.gain_v
    a = 1 - p.alpha_v  # LIFBoxCell (functional/lif_box.py): v += a (x + v_leak - v), starts at v_leak
    if (a <= 0).any():
        raise refuse("maps LIF to LIFBoxCell, which leaks by dt/tau; this node mixes leaky and non-leaky neurons")
    v_leak = p.bias_v / a
    if not _same(p.v_init, v_leak):
        at = np.unravel_index(np.argmax(np.abs(p.v_init - v_leak)), shape)
        raise refuse(f"starts LIFBoxCell at v_leak ({v_leak[at]:g} at {at}); this node starts elsewhere "
                     f"({p.v_init[at]:g})")
    node = nir.LIF(tau=_f32(NORSE_DT / a), r=ones, v_leak=_f32(v_leak), v_threshold=threshold, v_reset=0 * ones)
    return node, p.gain_v / a


def _per_output(gain: np.ndarray, axis: int, src: str, dst: str) -> np.ndarray:
    """`gain` as one factor per output unit of `src` (its `axis` of the neuron shape), or a refusal."""
    moved = np.moveaxis(gain, axis, 0).reshape(gain.shape[axis], -1)
    if not np.allclose(moved, moved[:, :1], rtol=1e-9, atol=0):
        raise UnsupportedError(f"norse's importer fixes the input gain to 1; this node's gain varies within one "
                               f"output of '{src}', so it cannot be folded into its weights", node=dst)
    return moved[:, 0]


def _fold(graph: Graph, op: Op, gain: np.ndarray, folds: dict[str, np.ndarray]) -> None:
    """IAFCell and LIFBoxCell ignore r (import_nir.py warns and drops it): a gain != 1 goes into the
    weights of every source, which must be a synapse feeding this op alone (else others would change)."""
    if np.allclose(gain, 1, rtol=0, atol=1e-9):  # a == 1 - alpha_v in float64 leaves a / a' = 1 +- 1e-16
        return
    for source in op.sources:
        src, what = source.name, graph.primitive(source.name)
        # weights of its own, in a node the importer has a module for (so not a Conv1d)
        weighted = what.has_weight_array and type(graph.nodes[src]) in MODULES
        others = [dst for dst in graph.fan_out(src) if dst != op.name]
        if not weighted or others:
            why = f"also feeds '{others[0]}'" if weighted else f"is {graph.type_of(src)!r}, a node without weights"
            raise UnsupportedError(f"norse's importer fixes the input gain to 1 and this node's gain ("
                                   f"{gain[gain != 1].flat[0]:g}) cannot be folded into '{src}', which {why}",
                                   node=op.name)
        # one factor per output unit: a convolution's channel (first axis), a dense layer's last axis
        folds[src] = _per_output(gain, 0 if what.is_window else len(gain.shape) - 1, src, op.name)


def _dense(op: Op, gain: np.ndarray | None) -> nir.Affine:
    """torch.nn.Linear (from an Affine or a Linear); a zero bias adds exactly nothing."""
    node = op.node
    weight = np.asarray(node.weight, np.float64)
    bias = np.zeros(weight.shape[0])
    if getattr(node, "bias", None) is not None:
        bias = bias + np.asarray(node.bias, np.float64)
    g = np.ones(weight.shape[0]) if gain is None else gain
    return nir.Affine(weight=_f32(weight * g[:, None]), bias=_f32(bias * g))


def _conv2d(op: Op, gain: np.ndarray | None) -> nir.Conv2d:
    """torch.nn.Conv2d: it sets .bias unconditionally, so a bias is always written."""
    node = op.node
    weight = np.asarray(node.weight, np.float64)
    bias = np.zeros(weight.shape[0]) + (0.0 if node.bias is None else np.asarray(node.bias, np.float64))
    g = np.ones(weight.shape[0]) if gain is None else gain
    spatial = tuple(op.in_shape[1:])
    return nir.Conv2d(input_shape=spatial, weight=_f32(weight * g[:, None, None, None]),
                      stride=integers(node.stride, "stride", 2, 1), padding=conv_padding(node, spatial),
                      dilation=integers(node.dilation, "dilation", 2, 1),
                      groups=integers(node.groups, "groups", 1, 1)[0], bias=_f32(bias * g))


def _flatten(op: Op, gain: np.ndarray | None) -> nir.Flatten:
    """torch.nn.Flatten on the batched tensor: negative dims mean the same there."""
    n = len(op.in_shape)
    start, end = (int(np.ravel(getattr(op.node, f))[0]) % n - n for f in ("start_dim", "end_dim"))
    return nir.Flatten(input_type={"input": np.array(op.in_shape)}, start_dim=start, end_dim=end)


def _sum_pool(op: Op, gain: np.ndarray | None) -> nir.SumPool2d:
    """LPPool2d(norm_type=1) sums; it ignores padding (a warning only)."""
    node = op.node
    if any(integers(node.padding, "padding", 2, 0)):
        raise UnsupportedError("norse's importer maps SumPool2d to LPPool2d, which ignores padding; this "
                               "node pads", node=op.name)
    return nir.SumPool2d(kernel_size=np.array(integers(node.kernel_size, "kernel_size", 2, 1)),
                         stride=np.array(integers(node.stride, "stride", 2, 1)), padding=np.zeros(2, np.int64))


# The non-neuron NIR types `_import_norse_module` has a module for, besides Input and Output, by class:
# how each is written (with `gain`, one factor per output unit to fold in, where it has weights).
MODULES: dict[type, Callable[[Op, np.ndarray | None], nir.NIRNode]] = {
    nir.Affine: _dense, nir.Linear: _dense, nir.Conv2d: _conv2d, nir.Flatten: _flatten, nir.SumPool2d: _sum_pool}


def _synapse(op: Op, gain: np.ndarray | None) -> nir.NIRNode:
    """The NIR node of a non-neuron op (`gain`: one factor per output unit to fold in, if any)."""
    what = op.primitive
    if what.is_input:  # batch-free type: nir.read's type check passes (to_nir writes [1, N], which fails it)
        return nir.Input(input_type={"input": np.array(op.out_shape)})
    if what.is_output:
        return nir.Output(output_type={"output": np.array(op.out_shape)})
    write = MODULES.get(type(op.node))
    if write is None:
        raise UnsupportedError(f"norse's importer has no module for {op.kind} (import_nir.py maps it to None and "
                               "nirtorch skips the node)", node=op.name)
    return write(op, gain)


def _edges(program: Program) -> list[tuple[str, str]]:
    """Every edge, ordered so that nirtorch's executor runs the nodes as our Program does: it runs a
    depth-first pre-order walk from the Input (graph_utils.py trace_execution, children in edge
    order) and feeds a node the outputs its sources made this step if they have run, else those of
    the step before (graph_executor.py _apply_module). Children go in our order, Output last (the
    executor returns the last node it runs); the walk is then checked edge by edge."""
    position = {op.name: (op.primitive.is_output, i) for i, op in enumerate(program.ops)}
    edges = sorted(((s.name, op.name) for op in program.ops for s in op.sources), key=lambda e: position[e[1]])
    children: dict[str, list[str]] = {op.name: [] for op in program.ops}
    for src, dst in edges:
        children[src].append(dst)
    walk: list[str] = []
    stack = [program.inputs[0]]
    while stack:
        name = stack.pop()
        if name not in walk:
            walk.append(name)
            stack.extend(reversed([c for c in children[name] if c not in walk]))
    for op in program.ops:
        if op.name not in walk:
            raise UnsupportedError("nirtorch's executor (norse's importer) never runs this node: its depth-first "
                                   "walk from the Input does not reach it", node=op.name)
    for op in program.ops:
        for s in op.sources:  # a forward source must run first; a back edge's source after (a step late)
            if (walk.index(s.name) < walk.index(op.name)) == bool(s.delay):
                raise UnsupportedError(f"nirtorch's executor (norse's importer) walks the graph depth-first from "
                                       f"the Input and would feed this node the output of '{s.name}' "
                                       f"{'of this step' if s.delay else 'one step late'}", node=op.name)
    if walk[-1] != program.outputs[0]:
        raise UnsupportedError("nirtorch's executor returns the last node it runs, which would not be the Output",
                               node=walk[-1])
    return edges


def _check_names(program: Program) -> None:
    """nirtorch registers node `n` as submodule n.replace('.', '_') (utils.py sanitize_name)."""
    from torch import nn

    seen: dict[str, str] = {}
    for op in program.ops:
        module = op.name.replace(".", "_")
        if module in seen or module in EXECUTOR_ATTRIBUTES or hasattr(nn.Module, module) or not module:
            raise UnsupportedError(f"nirtorch would register this node as submodule '{module}', which is "
                                   f"{'taken by ' + repr(seen[module]) if module in seen else 'reserved by torch'}",
                                   node=op.name)
        seen[module] = op.name


def write_for(graph: Graph, program: Program) -> nir.NIRGraph:
    """`program` as nodes and edges that `norse.torch.from_nir` (defaults) runs identically."""
    if len(program.inputs) != 1 or len(program.outputs) != 1:  # the executor takes one input, returns one output
        raise UnsupportedError(f"norse's importer runs one Input and one Output; this graph has "
                               f"{len(program.inputs)} and {len(program.outputs)}")
    _check_names(program)
    nodes: dict[str, nir.NIRNode] = {}
    folds: dict[str, np.ndarray] = {}
    for op in program.neuron_ops:
        nodes[op.name], gain = _neuron(op)
        _fold(graph, op, np.broadcast_to(gain, op.out_shape), folds)
    for op in program.ops:
        if not op.is_neuron:
            nodes[op.name] = _synapse(op, folds.get(op.name))
    edges = _edges(program)
    metadata = {"target": "norse 1.1.0", "reader": "norse.torch.from_nir(nir.read(file)) with dt=1e-3, reset_value"}
    return nir.NIRGraph(nodes={op.name: nodes[op.name] for op in program.ops}, edges=edges, metadata=metadata,
                        type_check=False)
