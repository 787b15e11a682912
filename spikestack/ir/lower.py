"""`lower_graph`: a `Graph` plus `LoweringOptions` becomes a `Program` of per-step operators.

The discretisation of NIR's ODEs happens here and only here (BRIEF §2). With a = dt/tau:
- euler (what exporters assume): x <- (1 - a) x + a * input
- exact: x <- e^(-dt/tau) x + (1 - e^(-dt/tau)) * input
LIF/LI: tau dv/dt = (v_leak - v) + r I.  CubaLIF/CubaLI add tau_syn dI/dt = -I + w_in S.
IF/I: dv/dt = r I, so v <- v + dt * r * input.
"""

from __future__ import annotations

import numpy as np

from spikestack.errors import OptionsError
from spikestack.ir.graph import Graph
from spikestack.ir.options import LoweringOptions
from spikestack.ir.program import NeuronCoefficients, Op, Program, Source
from spikestack.memory import check_allocation, check_elements

# float64 arrays of a population's shape that lowering one neuron node holds at its peak: the
# coefficients it keeps (up to 8) and the broadcast parameters they are made from.
NEURON_ARRAYS = 10
NEURON_KINDS = frozenset({"IF", "I", "LIF", "LI", "CubaLIF", "CubaLI"})
DELAY_ITEMSIZE = 8  # the simulator's float64 ring buffer (Lava's DelayDense holds as much): the worst case


def _arr(value, shape) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), shape).copy()


def _leak(tau, dt: float, integration: str, name: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (decay, input gain) per step for a leaky state with time constant tau."""
    if integration == "exact":
        decay = np.exp(-dt / tau)
        return decay, 1.0 - decay
    a = dt / tau
    if (a > 1).any():
        raise OptionsError(
            f"node '{name}': dt/{field} = {a.max():.3g} > 1 makes forward Euler unstable; "
            "use a smaller dt, integration='exact', or the exporter's preset"
        )
    return 1.0 - a, a


def neuron_coefficients(node, kind: str, shape, options: LoweringOptions, name: str) -> NeuronCoefficients:
    dt, mode = options.dt, options.integration
    r = _arr(getattr(node, "r", 1.0), shape)
    if kind in ("IF", "I"):
        alpha_v, gain_v, bias_v = np.ones(shape), dt * r, np.zeros(shape)
    else:
        tau = _arr(node.tau_mem if kind.startswith("Cuba") else node.tau, shape)
        alpha_v, a = _leak(tau, dt, mode, name, "tau_mem" if kind.startswith("Cuba") else "tau")
        gain_v, bias_v = a * r, a * _arr(node.v_leak, shape)
    alpha_i = gain_i = None
    if kind.startswith("Cuba"):
        alpha_i, a_syn = _leak(_arr(node.tau_syn, shape), dt, mode, name, "tau_syn")
        gain_i = a_syn * _arr(getattr(node, "w_in", 1.0), shape)
    spiking = kind in ("IF", "LIF", "CubaLIF")
    v_threshold = _arr(node.v_threshold, shape) if spiking else None
    v_reset = _arr(node.v_reset if getattr(node, "v_reset", None) is not None else 0.0, shape) if spiking else None
    v_init = options.initial_potential * v_threshold if spiking else np.zeros(shape)
    return NeuronCoefficients(
        kind=kind, alpha_v=alpha_v, gain_v=gain_v, bias_v=bias_v, v_init=v_init, alpha_i=alpha_i,
        gain_i=gain_i, v_threshold=v_threshold, v_reset=v_reset, reset=options.reset,
        reset_timing=options.reset_timing, cuba_order=options.cuba_order,
    )


def delay_steps(node, shape, dt: float, name: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        steps = np.rint(_arr(node.delay, shape) / dt)
    if (steps < 0).any():
        raise OptionsError(f"node '{name}': negative delay")
    if not np.isfinite(steps).all():  # a finite delay over a tiny dt: more steps than a float holds
        raise OptionsError(f"node '{name}' field 'delay': {np.max(node.delay):g} / dt = {dt:g} is too many steps")
    # Both engines buffer max(steps) + 1 steps of every element, per sample: check one sample now
    # (a Python int from the float maximum, so 10^30 steps cannot wrap around in int64).
    depth = int(steps.max(initial=0)) + 1
    check_allocation(f"node '{name}' field 'delay': a buffer of {depth:,} steps x {steps.size:,} elements x "
                     f"{DELAY_ITEMSIZE} bytes", depth * steps.size * DELAY_ITEMSIZE)
    return steps.astype(np.int64)


def _check_size(name: str, kind: str, shape, total: int) -> int:
    """Check, before broadcasting, the float64 arrays that lowering node `name` makes of its parameters
    (a one-element parameter grows to the node's shape), and the running total over the Program,
    which this returns."""
    arrays = NEURON_ARRAYS if kind in NEURON_KINDS else 2 if kind == "Delay" else 0
    if not arrays:
        return total
    total += check_elements(f"node '{name}' ({kind} of shape {tuple(shape)}) coefficients", shape, np.float64, arrays)
    check_allocation(f"the coefficients of the nodes up to '{name}', all together", total)
    return total


def lower_graph(graph: Graph, options: LoweringOptions) -> Program:
    """Discretise every node of a validated graph into an operator of the Program."""
    ops, total = [], 0
    for name in graph.order:
        kind = graph.type_of(name)
        node, shape = graph.nodes[name], graph.out_shapes[name]
        total = _check_size(name, kind, shape, total)
        if kind in NEURON_KINDS:
            params = neuron_coefficients(node, kind, shape, options, name)
        elif kind == "Delay":
            params = delay_steps(node, shape, options.dt, name)
        else:
            params = node
        sources = tuple(Source(src, 1 if (src, name) in graph.back_edges else 0) for src in graph.fan_in[name])
        ops.append(Op(name, kind, graph.in_shapes[name], shape, sources, params))
    return Program(ops=tuple(ops), inputs=graph.inputs, outputs=graph.outputs, options=options)
