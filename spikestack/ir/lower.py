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
from spikestack.ir.presets import PRESETS, preset_rules
from spikestack.ir.primitives import DelaySteps, Primitive, Role, ThresholdLevel, primitive
from spikestack.ir.program import NeuronCoefficients, Op, OpParams, Program, Source
from spikestack.memory import check_allocation, check_elements

# float64 arrays of a population's shape that lowering one neuron node holds at its peak: the
# coefficients it keeps (up to 8) and the broadcast parameters they are made from.
NEURON_ARRAYS = 10
ROCKPOOL_GAIN_TOLERANCE = 1e-4  # Rockpool's r in float32 gives g = 1 to ~2e-7; 1e-4 tells another dt apart
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


def _tau(node, field: str, shape, options: LoweringOptions, name: str) -> np.ndarray:
    """A time constant in dt's unit: Norse 1.1.0's exporter writes dt * tau (its preset says so)."""
    tau = _arr(getattr(node, field), shape)
    preset = preset_rules(options.preset)
    if preset.tau_unit_dt:
        tau = tau / options.dt
    if preset.max_tau is not None and tau.size and tau.max() > preset.max_tau:
        older = [p for p in PRESETS if p.startswith(f"{preset.name}@")]
        raise OptionsError(
            f"node '{name}' field '{field}': {np.max(getattr(node, field)):g} read as {preset.name} {preset.release} "
            f"writes it gives tau = {tau.max():g} s, beyond the {preset.max_tau:g} s the preset believes; "
            f"a file from an older release? try --preset {older[0] if older else 'with explicit --dt'}")
    return tau


def neuron_coefficients(node, kind: str, shape, options: LoweringOptions, name: str,
                        reset_timing: str | None = None) -> NeuronCoefficients:
    """`reset_timing`: the node's own, where a preset's rule gives it one (`_reset_timing`)."""
    dt, mode, preset = options.dt, options.integration, preset_rules(options.preset)
    what = primitive(kind, name)
    r = _arr(getattr(node, "r", 1.0), shape)
    if not what.leaky:
        alpha_v, gain_v, bias_v = np.ones(shape), dt * r, np.zeros(shape)
    else:
        field = "tau_mem" if what.has_current else "tau"
        tau = _tau(node, field, shape, options, name)
        alpha_v, a = _leak(tau, dt, mode, name, field)
        gain_v, bias_v = a * r, a * _arr(node.v_leak, shape)
        if preset.voltage_input == "rockpool":
            gain_v, bias_v = _rockpool_voltage(node, kind, tau, r, options, name)
    if kind in preset.unscaled_input:
        gain_v = r
    alpha_i = gain_i = None
    if what.has_current:
        alpha_i, a_syn = _leak(_tau(node, "tau_syn", shape, options, name), dt, mode, name, "tau_syn")
        gain_i = _current_gain(options, alpha_i, a_syn) * _arr(getattr(node, "w_in", 1.0), shape)
    spiking = what.spiking
    v_threshold = _arr(node.v_threshold, shape) if spiking else None
    if spiking and options.spikes_per_step == "many" and not (v_threshold > 0).all():
        raise OptionsError(f"node '{name}': spikes_per_step='many' counts floor(v / v_threshold) spikes, "
                           f"so v_threshold must be > 0 (found {v_threshold.min():g})")
    v_reset = _arr(node.v_reset if getattr(node, "v_reset", None) is not None else 0.0, shape) if spiking else None
    v_init = options.initial_potential * v_threshold if spiking else np.zeros(shape)
    if preset.start_at_leak:  # Norse's states start at rest
        v_init = v_init + (_arr(node.v_leak, shape) if hasattr(node, "v_leak") else v_reset if spiking else 0.0)
    return NeuronCoefficients(
        kind=kind, alpha_v=alpha_v, gain_v=gain_v, bias_v=bias_v, v_init=v_init, alpha_i=alpha_i,
        gain_i=gain_i, v_threshold=v_threshold, v_reset=v_reset, reset=options.reset,
        reset_timing=reset_timing or options.reset_timing, cuba_order=options.cuba_order, threshold=options.threshold,
        spikes_per_step=options.spikes_per_step,
    )


def _rockpool_voltage(node, kind: str, tau: np.ndarray, r: np.ndarray, options: LoweringOptions,
                      name: str) -> tuple[np.ndarray, np.ndarray]:
    """(gain_v, bias_v) as Rockpool steps its modules (Preset.voltage_input "rockpool"): its exporter
    writes r = tau e^(-dt/tau) / dt, a unit gain once dt is known; a file whose r says otherwise was
    written at another dt, or not by Rockpool, and is refused."""
    alpha = np.exp(-options.dt / tau)
    g = r * options.dt / (tau * alpha)
    if np.abs(g - 1).max() > ROCKPOOL_GAIN_TOLERANCE:
        raise OptionsError(f"node '{name}' field 'r': {np.ravel(r)[np.abs(g - 1).argmax()]:g} is not "
                           f"tau e^(-dt/tau) / dt for dt = {options.dt:g}, as Rockpool's exporter writes it: "
                           "written with another dt (pass --dt), or not a Rockpool file")
    v_leak = _arr(node.v_leak, alpha.shape)
    what = primitive(kind, name)
    if not what.spiking and not what.has_current:  # LI, as ExpSynTorch: v <- beta (v + x); it has no bias
        if np.any(v_leak != 0):
            raise OptionsError(f"node '{name}' field 'v_leak': Rockpool's ExpSynTorch has no bias, found {v_leak.max():g}")
        return g * alpha, v_leak
    return g, v_leak  # LIFTorch, LIFNeuronTorch: v <- alpha v + g x + bias, with the bias per step


def _reset_timing(graph: Graph, name: str, kind: str, options: LoweringOptions) -> str:
    """"before_decay" where the preset says the delayed zero reset of this kind comes before the decay
    (snnTorch's Leaky: v <- beta (1 - s') v + x), unless the node is in a two-node loop with an
    Affine/Linear, as snnTorch writes its RLeaky (whose reset comes after); else the options' timing."""
    if kind not in preset_rules(options.preset).zero_reset_before_decay or options.reset != "zero" or options.reset_timing != "delayed":
        return options.reset_timing
    loop = any(name in graph.fan_out(m) and graph.primitive(m).is_dense for m in graph.fan_out(name))
    return options.reset_timing if loop else "before_decay"


def _current_gain(options: LoweringOptions, alpha_i: np.ndarray, a_syn: np.ndarray) -> np.ndarray:
    """How a CubaLIF's input enters its current (ir/presets.py, Preset.current_input)."""
    rule = preset_rules(options.preset).current_input
    if rule == "impulse":
        return np.ones_like(alpha_i)
    return alpha_i if rule == "decayed" else a_syn


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


def _check_size(name: str, what: Primitive, shape, total: int) -> int:
    """Check, before broadcasting, the float64 arrays that lowering node `name` makes of its parameters
    (a one-element parameter grows to the node's shape), and the running total over the Program,
    which this returns."""
    # a neuron's coefficients; a Delay's steps or a Threshold's level: the parameter and its broadcast
    arrays = NEURON_ARRAYS if what.is_neuron else 2 if what.stateful or what.role is Role.THRESHOLD else 0
    if not arrays:
        return total
    total += check_elements(f"node '{name}' ({what.kind} of shape {tuple(shape)}) coefficients", shape, np.float64, arrays)
    check_allocation(f"the coefficients of the nodes up to '{name}', all together", total)
    return total


def _params(graph: Graph, name: str, what: Primitive, options: LoweringOptions) -> OpParams:
    """The op's parameters in the one typed form its role has (`ir.program`)."""
    node, shape = graph.nodes[name], graph.out_shapes[name]
    if what.is_neuron:
        return neuron_coefficients(node, what.kind, shape, options, name, _reset_timing(graph, name, what.kind, options))
    if what.stateful:
        return DelaySteps(delay_steps(node, shape, options.dt, name))
    if what.is_synapse:
        return what.synapse(node, graph.in_shapes[name], shape)
    if what.spiking:
        return ThresholdLevel(_arr(node.threshold, graph.in_shapes[name]))
    return None


def lower_graph(graph: Graph, options: LoweringOptions) -> Program:
    """Discretise every node of a validated graph into an operator of the Program."""
    ops, total = [], 0
    for name in graph.order:
        what = graph.primitive(name)
        total = _check_size(name, what, graph.out_shapes[name], total)
        sources = tuple(Source(src, 1 if (src, name) in graph.back_edges else 0) for src in graph.fan_in[name])
        ops.append(Op(name, what.kind, graph.in_shapes[name], graph.out_shapes[name], sources, graph.nodes[name],
                      _params(graph, name, what, options)))
    return Program(ops=tuple(ops), inputs=graph.inputs, outputs=graph.outputs, options=options)
