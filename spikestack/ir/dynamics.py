"""Neuron dynamics, written once as pure step functions over numpy arrays or torch tensors.

`neuron_step` is the float update of every NIR neuron kind, from the per-step coefficients that
`lower.py` computes. Training layers, the simulator and the Lava process models all call it; the
threshold function is injected (Heaviside for inference, a surrogate for training), so the ODE is
never copied. Written with plain operators only, so the same code runs on both array libraries, and
the compiled engine (numba) compiles these same functions for one neuron at a time.
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


# Three more elementary functions, so that no literal constant meets a value in the equations below:
# in compiled code (numba) `1 - x` would turn a float32 x into float64, and the state with it. The
# compiled engine gives these (and heaviside) dtype-keeping scalar versions; here they are plain.
def one_minus(x):
    return 1 - x


def floor(x):
    return x - x % 1  # on numpy and torch alike (torch's // has no derivative; this has 0)


def positive_part(x):
    return (x + abs(x)) / 2  # max(x, 0) with plain operators


def initial_state(p: NeuronCoefficients, like) -> NeuronState:
    """State at t=0 for an input batch shaped like `like` (B, *shape)."""
    zeros = like * 0
    return NeuronState(i=zeros, v=zeros + p.v_init, s=zeros)


def subthreshold(x, state: NeuronState, p: NeuronCoefficients):
    """Leaky integration of input x; returns (i, v) before any spike or reset of this step."""
    if p.has_current:
        i = p.alpha_i * state.i + p.gain_i * x
        drive = i if p.current_first else state.i
    else:
        i, drive = state.i, x
    v = state.v
    if p.spiking and p.resets_before_decay:  # snnTorch's Leaky, zero reset: beta (1 - s') v + x
        v = _reset(v, state.s, p)
    v = p.alpha_v * v + p.gain_v * drive + p.bias_v
    if p.spiking and p.resets_delayed:  # snnTorch: last step's spike resets now
        v = _reset(v, state.s, p)
    return i, v


def _reset(v, s, p: NeuronCoefficients):
    if p.subtracts:
        return v - s * p.v_threshold  # s spikes remove s thresholds
    fired = heaviside(s) if p.many_spikes else s  # 0/1, also for a count of spikes
    return v + fired * (p.v_reset - v)  # v_reset where spiked, v elsewhere


def fire(v, p: NeuronCoefficients, spike_fn: Callable = heaviside):
    """This step's spikes from v (before any reset).

    "one" per step: spike_fn(v - theta) fires at v > theta; at v >= theta it is 1 - spike_fn(theta - v)
    (the same surrogate, mirrored, for training). "many": floor(v / theta) spikes, none below zero:
    Sinabs' MultiSpike and Rockpool's LIF, whose comparison is >= by construction (floor(1) = 1).
    Lowering checks theta > 0 for "many". In training, the count's gradient is the surrogate's of
    its first spike (floor has none), as Sinabs' MultiSpike does."""
    if p.many_spikes:
        count = positive_part(floor(v / p.v_threshold))
        first = one_minus(spike_fn(p.v_threshold - v))  # 1 where v >= theta, with the surrogate's gradient
        return first + (count - one_minus(heaviside(p.v_threshold - v)))  # = count; heaviside carries no gradient
    if p.fires_at_threshold:
        return one_minus(spike_fn(p.v_threshold - v))
    return spike_fn(v - p.v_threshold)


def neuron_step(
    x, state: NeuronState, p: NeuronCoefficients, spike_fn: Callable = heaviside
) -> tuple[object, NeuronState]:
    """One time step. Returns (output, new_state); output is spikes, or v for non-spiking kinds."""
    i, v = subthreshold(x, state, p)
    if not p.spiking:
        return v, NeuronState(i, v, state.s)
    s = fire(v, p, spike_fn)
    if p.resets_now:
        v = _reset(v, s, p)
    return s, NeuronState(i, v, s)
