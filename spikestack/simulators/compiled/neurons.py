"""Compiled neuron populations: `ir.dynamics.neuron_step` (float) and `ir.fixed.population_registers`
(loihi), compiled for one neuron at a time, with the population's counts fused into the same loop.

Each kernel runs a block of S steps for every sample, the batch split over threads (`prange`):
samples are independent, so results do not depend on the thread count. The options are literal
(`scalars.flag_code`): numba compiles one specialisation per combination and caches it on disk.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import literally, prange, types
from numba.extending import overload

from spikestack.ir import dynamics, fixed
from spikestack.simulators.compiled.events import (ACTIVE_NEURON_UPDATES, NEURON_UPDATES, SPIKES_IN, SPIKES_OUT,
                                                   event_value)
from spikestack.simulators.compiled.scalars import (FIXED_FLAGS, FLOAT_FLAGS, FixedNeuron, FloatNeuron, flags_of,
                                                    spike_fn)


def _float_sample(x, i, v, s, c, out, rec, recording, counts, kinds, code):
    """One sample's S steps in float arithmetic (overloaded below with the options as constants)."""


def _fixed_sample(x, u, v, s, pending, q, out, rec, recording, counts, kinds, code):
    """One sample's S steps in Loihi's integers (overloaded below)."""


@overload(_float_sample, inline="always")
def _float_sample_impl(x, i, v, s, c, out, rec, recording, counts, kinds, code):
    if not isinstance(code, types.IntegerLiteral):
        return None
    (has_current, spiking, current_first, subtracts, before_decay, delayed, now, at_threshold,
     many) = flags_of(code.literal_value, len(FLOAT_FLAGS))

    def impl(x, i, v, s, c, out, rec, recording, counts, kinds, code):
        in_kind, out_kind = kinds
        for t in range(x.shape[0]):
            received = emitted = active = 0
            for k in range(x.shape[1]):
                p = FloatNeuron(c[0, k], c[1, k], c[2, k], c[3, k], c[4, k], c[5, k], c[6, k], has_current,
                                spiking, current_first, subtracts, before_decay, delayed, now, at_threshold, many)
                y, state = dynamics.neuron_step(x[t, k], dynamics.NeuronState(i[k], v[k], s[k]), p, spike_fn)
                out[t, k] = y
                i[k], v[k], s[k] = state.i, state.v, state.s
                if recording:  # recording: v, i, s
                    rec[t, 0, k], rec[t, 1, k], rec[t, 2, k] = state.v, state.i, state.s
                received += event_value(x[t, k], in_kind)
                emitted += event_value(y, out_kind)
                active += x[t, k] != 0 or (spiking and y != 0)
            counts[t, SPIKES_IN], counts[t, SPIKES_OUT] = received, emitted
            counts[t, NEURON_UPDATES], counts[t, ACTIVE_NEURON_UPDATES] = x.shape[1], active

    return impl


@overload(_fixed_sample, inline="always")
def _fixed_sample_impl(x, u, v, s, pending, q, out, rec, recording, counts, kinds, code):
    if not isinstance(code, types.IntegerLiteral):
        return None
    spiking, subtracts, at_threshold, many, delay_input = flags_of(code.literal_value, len(FIXED_FLAGS))

    def impl(x, u, v, s, pending, q, out, rec, recording, counts, kinds, code):
        in_kind, out_kind = kinds
        for t in range(x.shape[0]):
            received = emitted = active = 0
            for k in range(x.shape[1]):
                p = FixedNeuron(q[0, k], q[1, k], q[2, k], q[3, k], q[4, k], spiking, subtracts, at_threshold,
                                many, delay_input)
                y, u[k], v[k], s[k], pending[k] = fixed.population_registers(x[t, k], u[k], v[k], pending[k], p)
                out[t, k] = y
                if recording:  # recording: v, the current register u, s
                    rec[t, 0, k], rec[t, 1, k], rec[t, 2, k] = v[k], u[k], s[k]
                received += event_value(x[t, k], in_kind)
                emitted += event_value(y, out_kind)
                active += x[t, k] != 0 or (spiking and y != 0)
            counts[t, SPIKES_IN], counts[t, SPIKES_OUT] = received, emitted
            counts[t, NEURON_UPDATES], counts[t, ACTIVE_NEURON_UPDATES] = x.shape[1], active

    return impl


@numba.njit(parallel=True, cache=True)
def float_neurons(x, i, v, s, coefficients, out, rec, recording, counts, kinds, code):
    """x, out (S, B, n); state i, v, s (B, n); coefficients (7, n): alpha_v, gain_v, bias_v,
    alpha_i, gain_i, v_threshold, v_reset; rec (S, 3, B, n) if recording, else (1, 3, B, 1) unused;
    counts (S, B, M); kinds (input kind, output kind) codes; code the options."""
    for b in prange(x.shape[1]):
        _float_sample(x[:, b], i[b], v[b], s[b], coefficients, out[:, b], rec[:, :, b], recording, counts[:, b], kinds,
                      literally(code))


@numba.njit(parallel=True, cache=True)
def fixed_neurons(x, u, v, s, pending, ints, out, rec, recording, counts, kinds, code):
    """As `float_neurons` in Loihi's integers: state u, v, s, pending (B, n) int64; ints (5, n):
    du, dv, bias, threshold, reset_offset (`NeuronInts`' attributes of the same names)."""
    for b in prange(x.shape[1]):
        _fixed_sample(x[:, b], u[b], v[b], s[b], pending[b], ints, out[:, b], rec[:, :, b], recording, counts[:, b], kinds,
                      literally(code))


_ENTRIES: dict[tuple, object] = {}


def call_with_options(kernel, *args, code: int) -> None:
    """kernel(*args, code) through its specialisation for this literal code. numba's dispatcher
    re-types a call with a literal argument every time (tens of milliseconds); after the first
    call this goes to the compiled entry point directly, keyed by the arguments' dtypes and ranks
    (all are C-contiguous arrays, or scalars)."""
    key = (kernel, code, *((a.dtype.num, a.ndim) if isinstance(a, np.ndarray) else type(a) for a in args))
    entry = _ENTRIES.get(key)
    if entry is None:
        for a in args:
            if isinstance(a, np.ndarray) and not a.flags.c_contiguous:
                raise ValueError("compiled neuron kernels take C-contiguous arrays")  # a bug, not bad input
        kernel(*args, code)
        signature = tuple(numba.typeof(a) for a in args) + (types.literal(code),)
        _ENTRIES[key] = kernel.overloads[signature].entry_point
        return
    entry(*args, code)
