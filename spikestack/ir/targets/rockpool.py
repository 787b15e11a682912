"""`export --for rockpool`: NIR that Rockpool 3.1.0's own importer runs exactly as our simulator does.

What the importer reads (rockpool/nn/modules/torch/nir.py: `_convert_nir_to_rockpool`, `from_nir`),
and so what we write, per op of the Program (its `NeuronCoefficients`, never the original fields):
- CubaLIF -> `LIFTorch(tau_mem, tau_syn, threshold=v_threshold, bias=v_leak, dt=min(tau_mem/(1+r)))`,
  which steps (lif_torch.py: `LIFTorch.forward`) i <- beta (i + x), v <- alpha v + i + bias, then
  floor(v/theta) spikes where v >= theta, each removing theta in the same step, from i = v = 0. So:
  tau = -dt / ln(decay), r = tau_mem/dt - 1 (the importer's dt is then ours), v_leak = bias_v (per
  step), and our input gain c = gain_v gain_i / alpha_i, which Rockpool fixes at 1 (w_in and v_reset
  are ignored), folded into the incoming weights' rows (our i is theirs divided by gain_v).
- LI -> `ExpSynTorch(tau=tau.int(), dt=min(tau/(1+r)))`, which steps v <- beta (v + x) from 0
  (exp_syn_torch.py: `ExpSynTorch.forward`): tau in steps (it must be a whole number), r = tau - 1
  (dt = 1), c = gain_v / alpha_v folded; no bias.
- Linear/Affine -> `LinearTorch` (weight.T [, bias]); Input/Output: one flat [N] type, as every
  Rockpool module takes (B, T, N); Flatten nodes are dropped (with flat tensors they are identities).
- Recurrence: the importer reads one only as a subgraph of exactly Input, CubaLIF, Linear/Affine,
  Output (`LIFTorch(has_rec=True, w_rec=weight.T)`: i <- beta (i + x + s[t-1] w_rec)), which is our
  CubaLIF with a Linear/Affine back edge of its own; its weights take the same fold.
The gain c goes into the incoming Linear/Affine when it feeds only this neuron, else into a diagonal
Linear `<node>_gain` in front. Everything else is refused, naming the node; nothing is approximated.
"""

from __future__ import annotations

import math
from typing import Callable

import nir
import numpy as np

from spikestack.errors import UnsupportedError
from spikestack.ir.graph import Graph
from spikestack.ir.primitives import Role
from spikestack.ir.program import NeuronCoefficients, Op, Program

WHO = "Rockpool 3.1.0's importer"
WHOLE_STEPS = 1e-6  # LI tau in steps: |tau - round(tau)| / tau; float32 fields hold tau to ~6e-8


def _refuse(name: str, what: str) -> UnsupportedError:
    return UnsupportedError(what, node=name)


def _tau(decay: np.ndarray, dt: float, name: str, field: str) -> np.ndarray:
    """The time constant whose exact decay exp(-dt/tau) Rockpool computes (`tau_to_decay`)."""
    decay = np.asarray(decay, np.float64)
    if not ((decay > 0) & (decay < 1)).all():
        raise _refuse(name, f"{WHO} decays by exp(-dt/{field}) in (0, 1); this node's decay "
                            f"{float(decay.min() if (decay <= 0).any() else decay.max()):g} has no such {field}")
    return -dt / np.log(decay)


def _spiking_rules(p: NeuronCoefficients, name: str) -> None:
    """LIFTorch (lif_torch.py: `StepPWL.forward`, `LIFTorch.forward`): floor(v/theta) spikes at
    v >= theta, v -= n theta in the spiking step, states from zero, current before voltage."""
    if p.reset != "subtract":
        raise _refuse(name, f"{WHO} makes a LIFTorch, which resets by subtracting the threshold; "
                            "this node resets to v_reset")
    if p.reset_timing != "immediate":
        raise _refuse(name, f"{WHO} makes a LIFTorch, which resets in the spiking step; this node resets later "
                            f"(reset_timing '{p.reset_timing}')")
    if p.spikes_per_step != "many":
        raise _refuse(name, f"{WHO} makes a LIFTorch, which emits floor(v/threshold) spikes per step; "
                            "this node emits at most one")
    if p.cuba_order != "current_first":
        raise _refuse(name, f"{WHO} makes a LIFTorch, whose voltage integrates this step's current; "
                            "this node uses the previous one")


def _start_at_zero(p: NeuronCoefficients, name: str) -> None:
    if np.any(p.v_init != 0):
        start = float(np.ravel(p.v_init)[np.argmax(np.abs(np.ravel(p.v_init)))])
        raise _refuse(name, f"{WHO} starts every state at 0; this node starts at v = {start:g}")


def _cuba(op: Op, dt: float) -> tuple[nir.CubaLIF, np.ndarray]:
    p, n = op.params, math.prod(op.out_shape)
    _spiking_rules(p, op.name)
    _start_at_zero(p, op.name)
    flat = lambda a: np.broadcast_to(np.asarray(a, np.float64), op.out_shape).reshape(n)  # noqa: E731
    tau_mem = _tau(flat(p.alpha_v), dt, op.name, "tau_mem")
    tau_syn = _tau(flat(p.alpha_i), dt, op.name, "tau_syn")
    gain = flat(p.gain_v) * flat(p.gain_i) / flat(p.alpha_i)
    node = nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt - 1, v_leak=flat(p.bias_v),
                       v_threshold=flat(p.v_threshold), w_in=np.ones(n), v_reset=np.zeros(n))
    return node, gain


def _li(op: Op) -> tuple[nir.LI, np.ndarray]:
    p, n = op.params, math.prod(op.out_shape)
    _start_at_zero(p, op.name)
    flat = lambda a: np.broadcast_to(np.asarray(a, np.float64), op.out_shape).reshape(n)  # noqa: E731
    if np.any(flat(p.bias_v) != 0):
        raise _refuse(op.name, f"{WHO} reads an LI as ExpSynTorch, which has no bias; this node has v_leak != 0")
    if n < 2:  # `_to_tensor` makes a one-element tau a Python float, and `.int()` then fails
        raise _refuse(op.name, f"{WHO} crashes on an LI of one neuron (its tau becomes a float without .int())")
    steps = _tau(flat(p.alpha_v), 1.0, op.name, "tau")
    whole = np.rint(steps)
    if (whole < 1).any() or (np.abs(steps - whole) > WHOLE_STEPS * steps).any():
        raise _refuse(op.name, f"{WHO} truncates an LI's tau to a whole number; this node's tau is "
                               f"{float(steps[np.argmax(np.abs(steps - whole))]):.6g} steps")
    return nir.LI(tau=whole, r=whole - 1, v_leak=np.zeros(n)), flat(p.gain_v) / flat(p.alpha_v)


# The neuron types `_convert_nir_to_rockpool` builds a module for, by class: (op, our dt) -> (the node, the
# input gain to fold). An LI's tau is written in steps (ExpSynTorch runs at dt = 1), so it needs no dt.
NEURONS: dict[type, Callable[[Op, float], tuple[nir.NIRNode, np.ndarray]]] = {
    nir.CubaLIF: _cuba, nir.LI: lambda op, dt: _li(op)}
# Why the other neuron types cannot be written, where the reason is more than a missing module.
NEURON_REFUSALS = {nir.LIF: "crashes on every LIF node (it reads tau_mem, which nir.LIF lacks)"}


def _neuron(op: Op, dt: float) -> tuple[nir.NIRNode, np.ndarray]:
    convert = NEURONS.get(type(op.node))
    if convert is None:
        why = NEURON_REFUSALS.get(type(op.node), f"has no module for NIR {op.kind}")
        raise _refuse(op.name, f"{WHO} {why}; only CubaLIF (LIFTorch) and LI (ExpSynTorch) neurons export")
    return convert(op, dt)


def _recurrences(graph: Graph) -> dict[str, str]:
    """{CubaLIF: its Linear/Affine loop} for every back edge, in the one form the importer reads."""
    def lif_torch(name: str) -> bool:  # LIFTorch(has_rec=True) is read from a CubaLIF only
        return isinstance(graph.nodes[name], nir.CubaLIF)

    loops: dict[str, str] = {}
    for src, dst in sorted(graph.back_edges):
        lif, weights = (dst, src) if lif_torch(dst) else (src, dst)
        if (not lif_torch(lif) or not graph.primitive(weights).is_dense or lif in loops
                or graph.fan_in[weights] != (lif,) or graph.fan_out(weights) != (lif,)):
            raise _refuse(dst, f"{WHO} reads a recurrence only as a CubaLIF with a Linear/Affine loop of its own "
                               f"(a four-node subgraph); edge {src} -> {dst} closes another cycle")
        if isinstance(graph.nodes[weights], nir.Affine) and np.any(np.asarray(graph.nodes[weights].bias) != 0):
            raise _refuse(weights, f"{WHO} ignores the bias of a recurrent Affine; this one is not zero")
        loops[lif] = weights
    return loops


def _sources(graph: Graph, name: str, dropped: set[str], loops: dict[str, str]) -> list[str]:
    """Forward sources of `name` (its recurrent loop excluded), looking through dropped (Flatten) nodes."""
    found: list[str] = []
    for src in graph.fan_in[name]:
        if src == loops.get(name):
            continue
        found.extend(_sources(graph, src, dropped, loops) if src in dropped else [src])
    return found


def write_for(graph: Graph, program: Program) -> nir.NIRGraph:
    """`graph`, lowered as `program`, in the fields Rockpool 3.1.0's importer reads into the same dynamics."""
    if len(program.inputs) != 1 or len(program.outputs) != 1:  # nirtorch's GraphExecutor runs one of each
        raise _refuse((program.inputs + program.outputs)[0], f"{WHO} runs graphs of one Input and one Output")
    dt = program.options.dt
    loops = _recurrences(graph)
    # reshapes (Flatten) are dropped: on the flat tensors every Rockpool module takes they are identities
    dropped = {op.name for op in program.ops if op.primitive.role is Role.RESHAPE}
    written: dict[str, nir.NIRNode] = {}
    gains: dict[str, np.ndarray] = {}  # neuron -> input gain to fold
    for op in program.ops:
        what = op.primitive
        if what.is_input:
            written[op.name] = nir.Input(input_type={"input": np.array([math.prod(op.out_shape)])})
        elif what.is_output:
            written[op.name] = nir.Output(output_type={"output": np.array([math.prod(op.in_shape)])})
        elif what.is_dense:  # LinearTorch
            if len(op.in_shape) != 1:  # LinearTorch multiplies the last axis of a flat (B, T, N) tensor
                raise _refuse(op.name, f"{WHO} takes flat tensors; this {op.kind} multiplies input of shape "
                                       f"{op.in_shape}")
        elif what.is_neuron:
            written[op.name], gains[op.name] = _neuron(op, dt)
        elif op.name not in dropped:
            raise _refuse(op.name, f"{WHO} has no module for NIR {op.kind} (it reads Linear, Affine, CubaLIF, LI)")
    fold: dict[str, np.ndarray] = {}  # weights node -> row factors
    redirect: dict[str, str] = {}  # neuron -> the diagonal gain node its forward inputs now enter
    for name, gain in gains.items():
        srcs = _sources(graph, name, dropped, loops)
        own = all(graph.primitive(s).is_dense and graph.fan_out(s) == (name,) for s in srcs)
        for s in srcs + ([loops[name]] if name in loops else []):
            if own or s == loops.get(name):
                fold[s] = gain
        if not own and np.any(gain != 1):
            redirect[name] = f"{name}_gain"
            written[redirect[name]] = nir.Linear(weight=np.diag(gain).astype(np.float32))
    for op in program.ops:
        if op.primitive.is_dense:
            node, rows = op.node, fold.get(op.name)
            scale = (lambda a: a) if rows is None or np.all(rows == 1) else (  # row i of W (and b_i) times c_i
                lambda a: (np.asarray(a, np.float64) * rows.reshape((-1,) + (1,) * (np.ndim(a) - 1))).astype(np.float32))
            written[op.name] = nir.Linear(weight=scale(node.weight)) if isinstance(node, nir.Linear) else \
                nir.Affine(weight=scale(node.weight), bias=scale(node.bias))
    return _assemble(graph, written, loops, dropped, redirect)


def _assemble(graph: Graph, written: dict[str, nir.NIRNode], loops: dict[str, str], dropped: set[str],
              redirect: dict[str, str]) -> nir.NIRGraph:
    """Edges through dropped nodes and gain nodes; each recurrent CubaLIF and its loop as a subgraph
    named after the CubaLIF (dots made underscores: NIR would read them as subgraph addresses)."""
    outer = {lif: lif.replace(".", "_") for lif in loops}
    edges: list[tuple[str, str]] = []
    for name in graph.order:
        if name in dropped or name in loops.values():
            continue
        for src in _sources(graph, name, dropped, loops):
            dst = redirect.get(name, name)
            edges.append((outer.get(src, src), outer.get(dst, dst)))
        if name in redirect:
            edges.append((redirect[name], outer.get(name, name)))
    nodes = {n: v for n, v in written.items() if n not in loops and n not in loops.values()}
    for lif, weights in loops.items():
        shape = np.array([written[lif].tau_mem.size])
        nodes[outer[lif]] = nir.NIRGraph(
            nodes={"input": nir.Input(input_type={"input": shape}), "lif": written[lif],
                   "w_rec": written[weights], "output": nir.Output(output_type={"output": shape})},
            edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")], type_check=False)
    # No lowering options in the metadata: they would make our own reader lower these fields by NIR's
    # ODE, which is not what they mean here (r = tau/dt - 1 is the importer's convention).
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikestack": {"written_for": "rockpool"}},
                        type_check=False)
