"""What lets numba compile the dynamics of `ir.dynamics` and `ir.fixed` for one neuron at a time.

The equations stay where they are written; this module only makes them compilable:
- it registers those modules' step functions with numba (`register_jitable`), so compiled code
  that calls them compiles the very functions numpy and torch run;
- it gives the four elementary functions of `ir.dynamics` (heaviside, one_minus, floor,
  positive_part) scalar versions that keep their argument's dtype: numba would turn `1 - x` of a
  float32 x into float64, where numpy and torch keep float32, and the results would drift;
- it defines the per-neuron tuples the step functions read (`FloatNeuron`, `FixedNeuron`): the
  same attribute names as `NeuronCoefficients` and `NeuronInts`, one neuron's values each;
- the options, as `options_of` lists them, become literals in a kernel specialised on them
  (`specialise`): several times faster than one that tests them per neuron and step.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
from numba import types
from numba.extending import overload, register_jitable

from spikestack.ir import dynamics, fixed

for _function in (dynamics.neuron_step, dynamics.subthreshold, dynamics.fire, dynamics._reset,
                  fixed.population_registers, fixed.lif_registers, fixed._wrap, fixed._fold, fixed._clip,
                  fixed._decay):
    register_jitable(_function)


def _same_type(x):
    """numba's type of a scalar argument, to cast results back to it."""
    if not isinstance(x, (types.Float, types.Integer)):
        raise numba.errors.TypingError(f"compiled dynamics take scalars, got {x}")
    return x


@overload(dynamics.heaviside, inline="always")
def _heaviside(x):
    kind = _same_type(x)
    return lambda x: kind(x > 0)


@overload(dynamics.one_minus, inline="always")
def _one_minus(x):
    kind = _same_type(x)
    return lambda x: kind(1) - x


@overload(dynamics.floor, inline="always")
def _floor(x):
    kind = _same_type(x)
    return lambda x: kind(math.floor(x))


@overload(dynamics.positive_part, inline="always")
def _positive_part(x):
    kind = _same_type(x)
    return lambda x: max(x, kind(0))


@numba.njit(inline="always")
def spike_fn(x):
    """The spike function the float kernels pass to `neuron_step`: NIR's strict Heaviside."""
    return dynamics.heaviside(x)


class FloatNeuron(NamedTuple):
    """One neuron's `NeuronCoefficients` (absent coefficients are 0) and its options."""

    alpha_v: float
    gain_v: float
    bias_v: float
    alpha_i: float
    gain_i: float
    v_threshold: float
    v_reset: float
    has_current: bool
    spiking: bool
    current_first: bool
    subtracts: bool
    resets_before_decay: bool
    resets_delayed: bool
    resets_now: bool
    fires_at_threshold: bool
    many_spikes: bool


class FixedNeuron(NamedTuple):
    """One neuron's `NeuronInts`, as `ir.fixed.population_registers` reads them."""

    du: int
    dv: int
    bias: int
    threshold: int
    reset_offset: int
    spiking: bool
    subtracts: bool
    fires_at_threshold: bool
    many_spikes: bool
    delay_input: bool


FLOAT_FLAGS = FloatNeuron._fields[7:]
FIXED_FLAGS = FixedNeuron._fields[5:]


def options_of(source, names: tuple[str, ...]) -> tuple[bool, ...]:
    """The boolean attributes `names` of `source` (NeuronCoefficients, NeuronInts), in order."""
    return tuple(bool(getattr(source, name)) for name in names)
