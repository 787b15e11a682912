"""`--for sinabs`: NIR that Sinabs 3.1.3's own importer, `sinabs.from_nir`, runs as our simulator runs it.

What the importer does (sinabs/nir.py: `_import_sinabs_module`; nirtorch 2.0.2, which Sinabs' nir<=1.0.4
pin selects: from_nir.py `load`, graph_executor.py `GraphExecutor`), and so what is written here:
- Affine -> nn.Linear, Conv2d -> nn.Conv2d, SumPool2d -> sl.SumPool2d (padding ignored),
  Flatten -> nn.Flatten(start_dim + 1): written as they are (Linear as an Affine with zero bias).
- LIF -> LIFSqueeze(tau_mem=tau, spike_threshold=v_threshold, norm_input=False, min_v_mem=None) with
  its defaults MultiSpike (floor(v / theta) spikes, so v >= theta fires) and MembraneSubtract in the
  same step: v <- exp(-1/tau) v + x; r is ignored, v_leak must be 0. Every spiking op (IF included)
  is written as this LIF: the importer's IF branch adds min_v_mem = -v_threshold, a lower clip our IF
  has not, whereas a LIF with tau = inf decays by exp(-1/inf) = 1 and runs our IF exactly.
- LI -> ExpLeakSqueeze(tau_mem=tau, norm_input=False): v <- exp(-1/tau) v + x, output v; r must be 1
  and v_leak 0. Non-spiking LI and I ops are written as it (I with tau = inf).
- Input/Output -> identity; their types are not read. Sinabs' layers start every state at 0.
So a neuron's per-step input gain gain_v and its constant drive bias_v (NeuronCoefficients) are
folded into the one Affine/Conv2d that feeds it (W' = g W, b' = g b + bias_v): exact in real
arithmetic, float32 rounding aside. tau is chosen so that Sinabs' float32 exp(-1/tau) gives our alpha_v.
Files are read by nir 1.0.4, which knows no `v_reset` field: LIF nodes are written without it.
"""

from __future__ import annotations

from typing import Callable

import nir
import numpy as np
import torch

from spikestack.errors import UnsupportedError
from spikestack.ir.graph import Graph
from spikestack.ir.program import NeuronCoefficients, Op, Program

Fold = tuple[np.ndarray, np.ndarray]  # a neuron's input gain and constant drive, folded into its synapse

WHO = "Sinabs' importer (sinabs.from_nir)"
# Names nirtorch's GraphExecutor cannot add as modules: its own attributes (graph_executor.py __init__).
RESERVED = frozenset(dir(torch.nn.Module)) | {"graph", "stateful_modules", "return_state", "execution_order"}


class LIF(nir.LIF):
    """nir.LIF written without its `v_reset` dataset, which nir 1.0.4's LIF refuses (an unexpected keyword;
    unused here: the reset is subtractive). Named LIF so that it is written, and read in memory, as one."""

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.pop("v_reset", None)
        return d


def write_for(graph: Graph, program: Program) -> nir.NIRGraph:
    """The graph in the fields Sinabs' importer reads into our dynamics; refuses what it cannot run."""
    _check_chain(graph, program)
    folds: dict[str, Fold] = {}  # synapse -> (gain, bias) of its neuron
    nodes: dict[str, nir.NIRNode] = {}
    for op in program.neuron_ops:
        nodes[op.name] = _neuron(graph, op, folds)
    for op in program.ops:
        if not op.is_neuron:
            nodes[op.name] = _other(op, folds.get(op.name))
    return nir.NIRGraph(nodes={op.name: nodes[op.name] for op in program.ops}, edges=list(graph.edges),
                        type_check=False)


def _check_chain(graph: Graph, program: Program) -> None:
    """nirtorch 2.0.2's GraphExecutor runs all T steps in one call (a back edge reads nothing of this
    run), feeds only the first Input, orders nodes depth-first (a node with several inputs may run
    before one of them) and returns the last node it runs: only a chain runs as we run it."""
    if len(program.inputs) != 1 or len(program.outputs) != 1:
        raise UnsupportedError(f"{WHO} runs one Input and returns one Output; this graph has "
                               f"{len(program.inputs)} inputs and {len(program.outputs)} outputs")
    sanitized: dict[str, str] = {}
    for op in program.ops:
        name = op.name.replace(".", "_")  # nirtorch utils.py: sanitize_name
        if name in RESERVED or name in sanitized:
            clash = f"node '{sanitized[name]}'" if name in sanitized else "an attribute of nirtorch's GraphExecutor"
            raise UnsupportedError(f"{WHO} names it '{name}', which clashes with {clash}", node=op.name)
        sanitized[name] = op.name
        for src in op.sources:
            if src.delay:
                raise UnsupportedError(f"recurrent edge from '{src.name}': {WHO} runs all steps in one call, "
                                       "so a back edge would read nothing of this run", node=op.name)
        if len(op.sources) > 1:
            raise UnsupportedError(f"{len(op.sources)} inputs: nirtorch's executor orders nodes depth-first, "
                                   "so a node may run before one of its inputs", node=op.name)
        if len(graph.fan_out(op.name)) > 1:
            raise UnsupportedError(f"feeds {len(graph.fan_out(op.name))} nodes: {WHO} returns the last node "
                                   "it runs, so only a chain of nodes runs as written", node=op.name)


def _f32(a) -> np.ndarray:
    return np.asarray(a, np.float32)


def _neuron(graph: Graph, op: Op, folds: dict[str, Fold]) -> nir.NIRNode:
    p: NeuronCoefficients = op.params
    if p.has_current:
        raise UnsupportedError(f"{WHO} has no {p.kind} (no synaptic current: it maps the node to nothing)",
                               node=op.name)
    if np.any(p.v_init != 0):
        raise UnsupportedError("Sinabs' layers start at v = 0; this node starts at "
                               f"{np.ravel(p.v_init)[np.argmax(np.ravel(p.v_init) != 0)]:g}", node=op.name)
    if p.spiking:
        if p.reset != "subtract":
            raise UnsupportedError(f"{WHO} resets by subtracting the threshold (MembraneSubtract); "
                                   "this node resets to v_reset", node=op.name)
        if p.reset_timing != "immediate":
            raise UnsupportedError(f"{WHO} resets in the spiking step; this node resets {p.reset_timing} "
                                   "(in the next step)", node=op.name)
        if p.spikes_per_step != "many":
            raise UnsupportedError(f"{WHO} emits floor(v / threshold) spikes per step (MultiSpike); this node "
                                   "emits at most one", node=op.name)
    alpha = np.broadcast_to(np.asarray(p.alpha_v, np.float64), op.out_shape)
    if np.any(alpha <= 0) or np.any(alpha > 1):
        bad = alpha[(alpha <= 0) | (alpha > 1)].flat[0]
        raise UnsupportedError(f"v decays by a factor {bad:g} per step; Sinabs' exp(-1/tau) lies in (0, 1]",
                               node=op.name)
    params = {"tau": _tau(alpha), "r": np.ones(op.out_shape), "v_leak": np.zeros(op.out_shape)}
    if p.spiking:
        params["v_threshold"] = np.broadcast_to(np.asarray(p.v_threshold, np.float64), op.out_shape)
    params = {k: v.astype(np.float32) for k, v in _compact(op, params).items()}
    gain = np.broadcast_to(np.asarray(p.gain_v, np.float64), op.out_shape)
    bias = np.broadcast_to(np.asarray(p.bias_v, np.float64), op.out_shape)
    if np.any(gain != 1) or np.any(bias != 0):  # the importer's gain is 1 and v_leak 0: fold them upstream
        _fold(graph, op, gain, bias, folds)
    return LIF(**params) if p.spiking else nir.LI(**params)


def _fold(graph: Graph, op: Op, gain: np.ndarray, bias: np.ndarray, folds: dict[str, Fold]) -> None:
    src = op.sources[0].name if op.sources else None
    # a synapse the importer builds with weight and bias: weights of its own, of a type it reads (not Conv1d)
    foldable = src is not None and graph.primitive(src).has_weight_array and type(graph.nodes[src]) in WRITERS
    if not foldable or graph.fan_out(src) != (op.name,):
        fed = f"{graph.type_of(src)} '{src}'" if src is not None else "nothing"
        raise UnsupportedError(f"{WHO} gives neurons input gain 1 and no constant drive; this node's gain "
                               f"{np.ravel(gain)[0]:g} (and drive) can only be folded into an Affine or Conv2d "
                               f"feeding it alone, and it is fed by {fed}", node=op.name)
    if graph.primitive(src).is_window:  # one weight per output channel: gain and bias must be per channel
        per_channel = gain.reshape(len(gain), -1), bias.reshape(len(bias), -1)
        if any(np.any(a != a[:, :1]) for a in per_channel):
            raise UnsupportedError(f"input gain or constant drive varies within a channel: it cannot be folded "
                                   f"into Conv2d '{src}'", node=op.name)
        gain, bias = gain.reshape(len(gain), -1)[:, 0], bias.reshape(len(bias), -1)[:, 0]
    folds[src] = (gain, bias)


def _tau(alpha: np.ndarray) -> np.ndarray:
    """tau (float32) whose torch.exp(-1.0 / tau) in float32, as Sinabs computes it (layers/lif.py:
    alpha_mem_calculated), is nearest our float32 alpha (equal wherever a float32 tau reaches it; below
    ~1 step some alphas fall between two taus): bisection over the float32 bit patterns of tau in
    [+0, +inf], where exp(-1/tau) rises from 0 to 1. alpha = 1 (IF, I) is tau = inf."""
    values, where = np.unique(alpha.astype(np.float32), return_inverse=True)  # a layer shares a few taus
    want = torch.as_tensor(values)
    decay = lambda bits: torch.exp(-1.0 / bits.to(torch.int32).view(torch.float32))  # noqa: E731
    lo = torch.zeros(want.shape, dtype=torch.int64)  # tau = +0: decay 0 < want
    hi = torch.full(want.shape, 0x7F800000, dtype=torch.int64)  # tau = +inf: decay 1 >= want
    while bool((hi - lo > 1).any()):
        mid = (lo + hi) // 2
        up = decay(mid) >= want
        hi, lo = torch.where(up, mid, hi), torch.where(up, lo, mid)
    nearer = (decay(hi) - want).abs() <= (want - decay(lo)).abs()
    tau = torch.where(nearer, hi, lo).to(torch.int32).view(torch.float32)
    return torch.where(want == 1, torch.tensor(np.inf), tau).numpy()[where].reshape(alpha.shape)


def _compact(op: Op, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Parameters of a multi-dimensional population, reduced along the dimensions where none varies:
    the importer tests `any(node.v_leak)`, which iterates over the first dimension and fails on
    arrays of more than one element below it; Sinabs broadcasts (C, 1, 1) over (B, C, H, W)."""
    if len(op.out_shape) < 2:
        return params
    keep = [any(np.any(v != v.take([0], axis=d)) for v in params.values()) for d in range(len(op.out_shape))]
    if any(keep[1:]):
        raise UnsupportedError(f"parameters vary along dimension {keep.index(True, 1)} of {op.out_shape}; "
                               f"{WHO} reads only per-channel (first dimension) parameters", node=op.name)
    shape = (op.out_shape[0] if keep[0] else 1,) + (1,) * (len(op.out_shape) - 1)
    return {k: v[tuple(slice(0, n) for n in shape)] for k, v in params.items()}


def _dense(op: Op, fold: Fold | None) -> nir.Affine:
    """nn.Linear, written as an Affine (a Linear's bias is zero)."""
    weight = np.asarray(op.node.weight, np.float64)
    bias = np.asarray(op.node.bias, np.float64) if isinstance(op.node, nir.Affine) else np.zeros(len(weight))
    if fold is not None:
        weight, bias = fold[0][:, None] * weight, fold[0] * bias + fold[1]
    return nir.Affine(weight=_f32(weight), bias=_f32(bias))


def _conv2d(op: Op, fold: Fold | None) -> nir.Conv2d:
    node = op.node
    if isinstance(node.padding, str):
        raise UnsupportedError(f"padding '{node.padding}': {WHO} passes padding to nn.Conv2d as numbers",
                               node=op.name)
    weight, bias = np.asarray(node.weight, np.float64), np.asarray(node.bias, np.float64)
    if fold is not None:
        weight, bias = fold[0][:, None, None, None] * weight, fold[0] * bias + fold[1]
    return nir.Conv2d(input_shape=np.array(op.in_shape[1:]), weight=_f32(weight), stride=np.array(node.stride),
                      padding=np.array(node.padding), dilation=np.array(node.dilation),
                      groups=int(node.groups), bias=_f32(bias))


def _sum_pool(op: Op, fold: Fold | None) -> nir.SumPool2d:
    node = op.node
    if np.any(np.asarray(node.padding) != 0):
        raise UnsupportedError(f"padding {tuple(np.ravel(node.padding))}: {WHO} ignores SumPool2d's padding",
                               node=op.name)
    return nir.SumPool2d(kernel_size=np.array(node.kernel_size), stride=np.array(node.stride),
                         padding=np.zeros(2, np.int64))


def _flatten(op: Op, fold: Fold | None) -> nir.Flatten:
    return nir.Flatten(input_type={"input": np.array(op.in_shape)}, start_dim=int(op.node.start_dim),
                       end_dim=int(op.node.end_dim))


# The non-neuron NIR types `_import_sinabs_module` builds a module for, besides Input and Output, by
# class: how each is written (`fold`: the (gain, bias) of the neuron it feeds, where it has weights).
WRITERS: dict[type, Callable[[Op, Fold | None], nir.NIRNode]] = {
    nir.Affine: _dense, nir.Linear: _dense, nir.Conv2d: _conv2d, nir.SumPool2d: _sum_pool, nir.Flatten: _flatten}
# Why types it has no module for cannot be written, where the reason is more than its absence.
REFUSED = {nir.Conv1d: "fails on it (it calls .detach() on the file's numpy arrays)"}


def _other(op: Op, fold: Fold | None) -> nir.NIRNode:
    what = op.primitive
    if what.is_input:
        return nir.Input(input_type={"input": np.array(op.out_shape)})
    if what.is_output:
        return nir.Output(output_type={"output": np.array(op.in_shape)})
    write = WRITERS.get(type(op.node))
    if write is None:
        why = REFUSED.get(type(op.node), "has no such node")
        raise UnsupportedError(f"{WHO} {why}: {op.kind} cannot be written for Sinabs", node=op.name)
    return write(op, fold)
