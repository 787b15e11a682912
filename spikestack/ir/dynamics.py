"""Neuron dynamics, written once as pure step functions over numpy arrays or torch tensors.

`neuron_step` is the float update of every NIR neuron kind, from the per-step coefficients that
`lower.py` computes. Training layers, the simulator and the Lava process models all call it; the
threshold function is injected (Heaviside for inference, a surrogate for training), so the ODE is
never copied. Written with plain operators only, so the same code runs on both array libraries.
Split as Lava does: sub-threshold update, spiking activation, reset.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from spikestack.ir.program import NeuronCoefficients


class NeuronState(NamedTuple):
    i: object  # synaptic current (zeros for kinds without one)
    v: object  # membrane potential
    s: object  # spikes of the previous step (needed by the delayed reset)


def heaviside(x):
    """Strict x > 0 as 0/1 in x's own dtype (NIR's threshold is strict)."""
    return (x > 0).astype(x.dtype) if hasattr(x, "astype") else (x > 0).to(x.dtype)


def initial_state(p: NeuronCoefficients, like) -> NeuronState:
    """State at t=0 for an input batch shaped like `like` (B, *shape)."""
    zeros = like * 0
    return NeuronState(i=zeros, v=zeros + p.v_init, s=zeros)


def subthreshold(x, state: NeuronState, p: NeuronCoefficients):
    """Leaky integration of input x; returns (i, v) before any spike or reset of this step."""
    if p.has_current:
        i = p.alpha_i * state.i + p.gain_i * x
        drive = i if p.cuba_order == "current_first" else state.i
    else:
        i, drive = state.i, x
    v = state.v
    if p.spiking and p.reset_timing == "before_decay":  # snnTorch's Leaky, zero reset: beta (1 - s') v + x
        v = _reset(v, state.s, p)
    v = p.alpha_v * v + p.gain_v * drive + p.bias_v
    if p.spiking and p.reset_timing == "delayed":  # snnTorch: last step's spike resets now
        v = _reset(v, state.s, p)
    return i, v


def _reset(v, s, p: NeuronCoefficients):
    if p.reset == "subtract":
        return v - s * p.v_threshold  # s spikes remove s thresholds
    fired = heaviside(s) if p.spikes_per_step == "many" else s  # 0/1, also for a count of spikes
    return v + fired * (p.v_reset - v)  # v_reset where spiked, v elsewhere


def fire(v, p: NeuronCoefficients, spike_fn: Callable = heaviside):
    """This step's spikes from v (before any reset).

    "one" per step: spike_fn(v - theta) fires at v > theta; at v >= theta it is 1 - spike_fn(theta - v)
    (the same surrogate, mirrored, for training). "many": floor(v / theta) spikes, none below zero:
    Sinabs' MultiSpike and Rockpool's LIF, whose comparison is >= by construction (floor(1) = 1).
    Lowering checks theta > 0 for "many". In training, the count's gradient is the surrogate's of
    its first spike (floor has none), as Sinabs' MultiSpike does."""
    if p.spikes_per_step == "many":
        ratio = v / p.v_threshold
        count = ratio - ratio % 1  # floor on numpy and torch alike (torch's // has no derivative; this has 0)
        count = (count + abs(count)) / 2  # max(count, 0) with plain operators
        first = 1 - spike_fn(p.v_threshold - v)  # 1 where v >= theta, with the surrogate's gradient
        return first + (count - (1 - heaviside(p.v_threshold - v)))  # = count; heaviside carries no gradient
    if p.threshold == ">=":
        return 1 - spike_fn(p.v_threshold - v)
    return spike_fn(v - p.v_threshold)


def neuron_step(
    x, state: NeuronState, p: NeuronCoefficients, spike_fn: Callable = heaviside
) -> tuple[object, NeuronState]:
    """One time step. Returns (output, new_state); output is spikes, or v for non-spiking kinds."""
    i, v = subthreshold(x, state, p)
    if not p.spiking:
        return v, NeuronState(i, v, state.s)
    s = fire(v, p, spike_fn)
    if p.reset_timing == "immediate":
        v = _reset(v, s, p)
    return s, NeuronState(i, v, s)
