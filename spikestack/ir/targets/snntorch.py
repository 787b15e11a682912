"""`--for snntorch`: NIR that snnTorch 1.0.0's own importer (`snntorch.import_nir.import_from_nir`, with
nirtorch 2.6's `nir_to_torch`) loads into exactly the dynamics of our Program.

What that importer builds (import_nir.py `_nir_to_snntorch_module`), and so all a file can say:
- LIF -> `Leaky(beta = 1 - dt/tau, threshold = unique(v_threshold / (r dt/tau)), reset_mechanism="zero",
  reset_delay=False)` and CubaLIF -> `Synaptic(alpha = 1 - dt/tau_syn, beta = 1 - dt/tau_mem, ...)`, with
  dt = 1e-4 hard-coded, v_leak asserted 0 and v_reset ignored. Their forward (leaky.py `Leaky.forward`,
  synaptic.py `Synaptic.forward`) is: [syn <- alpha syn + x;] mem <- beta mem + (x | syn); spike at
  mem > threshold (`SpikingNeuron.fire`: ATan of mem - threshold, strict); mem <- 0 in the same step.
- Affine/Linear/Conv2d -> torch layers as written; Flatten -> `torch.nn.Flatten(start_dim, end_dim)` on
  batched tensors (dims unshifted); AvgPool2d -> `tuple()` of its fields; nirtorch's DEFAULT_MAP adds
  Conv1d and SumPool2d (as `LPPool2d(norm_type=1)`, padding ignored). Anything else: "Unknown node type".
- `_replace_rnn_subgraph_with_nirgraph` nests every 2-cycle LIF <-> Affine/Linear into a subgraph that
  nirtorch 2.6 cannot run; a 3-cycle is left to nirtorch, which feeds the loop's last node into the
  neuron one step late (`_find_input_nodes`: `<node>_prev_output`, zero before the first step).

So each neuron op is written as a LIF/CubaLIF whose importer-computed beta/alpha equal our decays in
float32, r = tau/dt and w_in = tau_syn/dt (unit gains), one threshold theta per layer; our gains g and
per-neuron thresholds are folded into the incoming weights (mem = (theta/thr) v is exact when the reset
is to zero and v starts at 0), and the importer's runtime then computes our update. A loop N <-> W
becomes N -> W -> identity Linear -> N, W's bias moved to N's forward input (ours adds it from t = 0,
nirtorch's delayed edge gives 0 at t = 0). Anything else is refused, naming the node.
"""

from __future__ import annotations

from typing import Callable

import nir
import numpy as np

from spikestack.errors import UnsupportedError
from spikestack.ir.graph import Graph
from spikestack.ir.options import LoweringOptions, options_metadata
from spikestack.ir.primitives import kinds_with
from spikestack.ir.program import NeuronCoefficients, Op, Program

DT = 1e-4  # import_nir.py `_nir_to_snntorch_module`: dt = 1e-4 for LIF and CubaLIF alike
# The neuron types `_nir_to_snntorch_module` maps by class (Leaky for LIF and IF, Synaptic for CubaLIF)
IMPORTED_NEURONS = (nir.LIF, nir.CubaLIF, nir.IF)
WHY = "snnTorch's importer resets {} (Leaky/Synaptic with reset_mechanism='zero', reset_delay=False)"
# What our own simulator needs to run the written file as snnTorch does (`spikestack run` with no options).
WRITTEN_OPTIONS = LoweringOptions(dt=DT, reset="zero", reset_timing="immediate")


def _refuse(name: str, what: str) -> UnsupportedError:
    return UnsupportedError(f"--for snntorch: {what}", node=name)


def _tau(decay: np.ndarray, name: str, field: str) -> np.ndarray:
    """float32 time constants whose `1 - dt / tau` rounds to each float32 decay both as the importer
    computes it (float32 arrays) and as our lowering reads the file back (float64): the nearest such
    neighbour of dt / (1 - decay)."""
    want = decay.astype(np.float32)
    out = np.empty_like(want)
    for a in np.unique(want):
        tau0 = np.float32(DT * 2.0**30 if a == 1 else DT / (1 - np.float64(a)))
        up = np.nextafter(tau0, np.float32(np.inf)) - tau0
        steps = np.arange(-256, 257)
        near = (tau0 + up * steps[np.argsort(np.abs(steps), kind="stable")]).astype(np.float32)
        near = near[near > 0]
        ok = ((1 - DT / near) == a) & ((1 - DT / near.astype(np.float64)).astype(np.float32) == a)
        if not ok.any():
            raise _refuse(name, f"no float32 {field} gives the decay {a!r} as beta = 1 - 1e-4 / {field}")
        out[want == a] = near[ok.argmax()]
    return out


def _check_neuron(op: Op, p: NeuronCoefficients) -> None:
    """Refuse, in one line, what the importer's Leaky/Synaptic cannot compute (see the module docstring)."""
    n = op.name
    if not isinstance(op.node, IMPORTED_NEURONS):
        raise _refuse(n, f"{op.kind} has no mapping (nirtorch: 'Unknown node type'); only LIF, CubaLIF and IF")
    if p.reset == "subtract":
        raise _refuse(n, WHY.format("to zero in the spiking step") + "; this node resets by subtraction")
    if p.reset_timing == "delayed":  # "before_decay" resets v before the decay: the same as immediate
        raise _refuse(n, WHY.format("in the spiking step") + "; this node's zero reset waits for the next step")
    if np.any(p.v_reset != 0):
        raise _refuse(n, WHY.format("to 0") + f"; this node resets to v_reset = {np.max(np.abs(p.v_reset)):g}")
    if p.threshold != ">":
        raise _refuse(n, "snnTorch fires at mem > threshold (SpikingNeuron.fire); this node fires at v >= threshold")
    if p.spikes_per_step != "one":
        raise _refuse(n, "snnTorch emits one spike per step; this node emits floor(v / threshold) spikes")
    if np.any(p.v_init != 0):
        raise _refuse(n, f"snnTorch's states start at 0; this node starts at v = {np.max(np.abs(p.v_init)):g}")
    if np.any(p.v_threshold <= 0):
        raise _refuse(n, "the importer's zero reset needs thresholds > 0 (mem_reset of mem = 0 would fire)")
    for field, decay in (("decay", p.alpha_v), ("current decay", p.alpha_i)):
        if decay is not None and np.any((decay < 0) | (decay > 1)):
            raise _refuse(n, f"snnTorch clamps beta/alpha to [0, 1]; this node's {field} is {np.max(decay):g}")
    if p.has_current and p.cuba_order != "current_first":
        raise _refuse(n, "snnTorch's Synaptic adds this step's current to mem; this node adds the previous one")
    if p.has_current and np.any(p.bias_v != 0):
        raise _refuse(n, f"snnTorch's Synaptic has no constant input to mem (v_leak is asserted 0); this node has "
                         f"v_leak (a drive of {np.max(np.abs(p.bias_v)):g} per step)")


def _flatten(program: Program, op: Op) -> nir.Flatten:
    """torch.nn.Flatten(start, end) runs on batched tensors: negative dims mean the same there."""
    n = len(op.in_shape)
    start, end = (int(getattr(op.node, f)) % n - n for f in ("start_dim", "end_dim"))
    return nir.Flatten(input_type={"input": np.array(op.in_shape)}, start_dim=start, end_dim=end)


def _pool_fields(node: nir.NIRNode) -> dict[str, np.ndarray]:
    return {f: np.broadcast_to(np.asarray(getattr(node, f), np.int64), (2,)).copy()
            for f in ("kernel_size", "stride", "padding")}


def _avg_pool(program: Program, op: Op) -> nir.AvgPool2d:
    return nir.AvgPool2d(**_pool_fields(op.node))


def _sum_pool(program: Program, op: Op) -> nir.SumPool2d:
    """nirtorch: LPPool2d(norm_type=1) = avg_pool2d * area, padding ignored."""
    pool = _pool_fields(op.node)
    area = int(np.prod(pool["kernel_size"]))
    binary = all(program.op(s.name).is_neuron for s in op.sources) and len(op.sources) == 1
    if np.any(pool["padding"] != 0) or area & (area - 1) or not binary:
        raise _refuse(op.name, "nirtorch runs SumPool2d as LPPool2d(norm_type=1), equal to a sum only without "
                               "padding, on spikes, with a power-of-two kernel area (avg * area exact)")
    return nir.SumPool2d(**pool)


# The unweighted, non-neuron NIR types that snnTorch's importer or nirtorch's DEFAULT_MAP reads, besides
# Input and Output, by class: how each is written. (Weighted ones are written by `_Writer.weighted`.)
PASSED: dict[type, Callable[[Program, Op], nir.NIRNode]] = {
    nir.Flatten: _flatten, nir.AvgPool2d: _avg_pool, nir.SumPool2d: _sum_pool}


class _Writer:
    """One export: checks and writes each op, folding neuron gains into the weighted nodes feeding them."""

    def __init__(self, graph: Graph, program: Program):
        self.graph, self.program = graph, program
        # float64 copies of every weighted node's arrays (dense layers and convolutions, all of which the
        # importer maps to torch layers as written), scaled in place by the neurons they feed
        self.weights: dict[str, list] = {}
        for op in program.ops:
            if op.primitive.has_weight_array:
                bias = getattr(op.node, "bias", None)
                self.weights[op.name] = [np.array(op.node.weight, np.float64),
                                         None if bias is None else np.array(bias, np.float64)]
        self.loops = self._loops()

    def _loops(self) -> dict[str, str]:
        """{dense: neuron} for each back edge dense -> neuron in the one form we can write (see docstring)."""
        loops = {}
        for src, dst in sorted(self.graph.back_edges):
            g = self.graph
            forward = any((s, dst) not in g.back_edges for s in g.fan_in[dst])  # else nirtorch waits forever
            if not (g.primitive(src).is_dense and g.fan_in[src] == (dst,) and g.fan_out(src) == (dst,)
                    and self.program.op(dst).is_neuron and forward):
                raise _refuse(dst, f"the recurrent edge {src} -> {dst} is not a neuron <-> Affine/Linear loop with "
                                   "a forward input: the only recurrence nirtorch runs as we do")
            loops[src] = dst
        return loops

    def _rows(self, src: str, values: np.ndarray) -> np.ndarray | None:
        """`values` (of the neuron's shape) as one factor per output row/channel of `src`, else None."""
        if self.graph.primitive(src).is_dense:
            return values.reshape(-1)
        flat = values.reshape(values.shape[0], -1)
        return flat[:, 0] if (flat == flat[:, :1]).all() else None

    def fold(self, op: Op, scale: np.ndarray, const: np.ndarray) -> None:
        """The neuron now integrates scale * (sum of its inputs) + const: scale the weighted nodes that feed
        only it, move const and any loop bias into a forward one's bias (convert a Linear to an Affine)."""
        carrier = None
        for src in self.graph.fan_in[op.name]:
            foldable = src in self.weights and self.graph.fan_out(src) == (op.name,)
            rows = self._rows(src, scale) if foldable else None
            if rows is None:
                if np.all(scale == 1):
                    continue
                why = (f"'{src}' is a {self.graph.type_of(src)}, without weights" if src not in self.weights else
                       f"it varies within a channel of '{src}'" if foldable else f"'{src}' also feeds other nodes")
                raise _refuse(op.name, f"snnTorch's importer fixes the input gain at 1 and one threshold per layer; "
                                       f"this node's gain/threshold ({np.min(scale):g}..{np.max(scale):g}) cannot be "
                                       f"folded into its input weights: {why}")
            weight, bias = self.weights[src]
            if np.any(rows != 1):
                weight *= rows.reshape(-1, *[1] * (weight.ndim - 1))
                if bias is not None:
                    bias *= rows
            if src in self.loops and bias is not None:  # nirtorch's delayed edge gives 0 before the first step
                const, self.weights[src][1] = const + bias, None  # a loop's dense and neuron are 1-d alike
            elif carrier is None and src not in self.loops:
                carrier = src
        if np.any(const != 0):
            rows = self._rows(carrier, const) if carrier is not None else None
            if rows is None:
                raise _refuse(op.name, "a constant input (v_leak or a recurrent bias) needs a forward Affine, Linear "
                                       "or Conv input that feeds only this node to carry it as bias")
            weight, bias = self.weights[carrier]
            self.weights[carrier][1] = (bias if bias is not None else np.zeros(weight.shape[0])) + rows

    def neuron(self, op: Op) -> nir.NIRNode:
        p: NeuronCoefficients = op.params
        _check_neuron(op, p)
        thr = np.asarray(p.v_threshold, np.float64)
        theta = np.float32(thr.flat[0])
        k = np.float64(theta) / thr  # mem = k v: one threshold theta, exact with a zero reset and v(0) = 0
        gain = np.asarray(p.gain_v, np.float64) * (np.asarray(p.gain_i, np.float64) if p.has_current else 1.0)
        self.fold(op, np.broadcast_to(k * gain, op.out_shape), np.broadcast_to(k * p.bias_v, op.out_shape))
        shape, zeros = op.out_shape, np.zeros(op.out_shape, np.float32)
        tau = _tau(np.broadcast_to(p.alpha_v, shape), op.name, "tau")
        common = dict(v_leak=zeros, v_threshold=np.full(shape, theta, np.float32), v_reset=zeros)
        if not p.has_current:  # LIF, or IF as a LIF whose beta is exactly 1
            return nir.LIF(tau=tau, r=tau / np.float32(DT), **common)
        tau_syn = _tau(np.broadcast_to(p.alpha_i, shape), op.name, "tau_syn")
        return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau, r=tau / np.float32(DT), w_in=tau_syn / np.float32(DT),
                           **common)

    def other(self, op: Op) -> nir.NIRNode | None:
        """Non-neuron nodes as the importer reads them; None for weighted nodes (written after folding)."""
        what, name = op.primitive, op.name
        if what.is_input:
            return nir.Input(input_type={"input": np.array(op.out_shape)})
        if what.is_output:
            if len(op.sources) != 1:
                raise _refuse(name, "nirtorch returns several edges into an Output as a tuple, not summed")
            return nir.Output(output_type={"output": np.array(op.in_shape)})
        if what.has_weight_array:
            return None
        write = PASSED.get(type(op.node))
        if write is None:
            mapped = [*(t.__name__ for t in PASSED), *kinds_with(lambda p: p.has_weight_array)]
            raise _refuse(name, f"{op.kind} has no mapping in snnTorch's importer or nirtorch's defaults (it maps LIF, "
                                f"CubaLIF, IF, {', '.join(mapped)})")
        return write(self.program, op)

    def weighted(self, name: str) -> nir.NIRNode:
        node, (weight, bias) = self.graph.nodes[name], self.weights[name]
        w32 = weight.astype(np.float32)
        b32 = None if bias is None else bias.astype(np.float32)
        if self.graph.primitive(name).is_dense:
            return nir.Linear(weight=w32) if b32 is None else nir.Affine(weight=w32, bias=b32)
        b32 = np.zeros(w32.shape[0], np.float32) if b32 is None else b32
        fields = {f: getattr(node, f) for f in ("stride", "padding", "dilation", "groups")}
        spatial = self.graph.in_shapes[name][1:]
        # a convolution of the type read (Conv1d or Conv2d); nir.Conv1d takes its one spatial size as an int
        return type(node)(input_shape=spatial[0] if len(spatial) == 1 else spatial, weight=w32, bias=b32, **fields)

    def write(self) -> nir.NIRGraph:
        if len(self.program.inputs) != 1 or len(self.program.outputs) != 1:
            raise UnsupportedError("snnTorch's importer (nirtorch) runs graphs with one Input and one Output only")
        nodes: dict[str, nir.NIRNode | None] = {}
        for op in self.program.ops:
            nodes[op.name] = self.neuron(op) if op.is_neuron else self.other(op)
        nodes.update({name: self.weighted(name) for name in self.weights})
        edges = [e for e in self.graph.edges if e not in self.graph.back_edges]
        taken = {n.replace(".", "_") for n in nodes}  # nirtorch's _sanitize_name must keep names apart
        for dense, neuron in self.loops.items():
            loop = f"{dense}_loop"
            while loop.replace(".", "_") in taken:
                loop += "_"
            taken.add(loop.replace(".", "_"))
            nodes[loop] = nir.Linear(weight=np.eye(self.graph.out_shapes[neuron][0], dtype=np.float32))
            edges += [(dense, loop), (loop, neuron)]
        metadata = options_metadata(WRITTEN_OPTIONS)
        metadata["spikestack"]["written_for"] = "snntorch"
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False)


def write_for(graph: Graph, program: Program) -> nir.NIRGraph:
    """`graph`, lowered as `program`, in the form snnTorch 1.0.0's importer runs as our simulator runs it."""
    return _Writer(graph, program).write()
