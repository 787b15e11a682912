"""Tests of `ir.fixed.neuron_step_fixed`, a population's whole fixed-point step: Lava's LIF update
(`lif_step_fixed`, tested against Lava in test_fixed.py) plus our extensions, by hand and by property.
The simulator's loihi mode and our Lava model both call it (tests/backends/lava/test_run_fixed.py
checks that the two agree bit for bit)."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spikestack.ir import fixed as fx

N = 3


def ints(du=4095, dv=0, bias_mant=0, bias_exp=0, vth=(10,), v_init=0, v_reset=None, reset="zero", compare=">",
         spikes_per_step="one", delay_input=False, has_current=False) -> fx.NeuronInts:
    """A population of N neurons; du=4095 leaves u with this step's input only."""
    def full(x):
        return np.broadcast_to(np.asarray(x, dtype=np.int64), (N,)).copy()
    return fx.NeuronInts(du=full(du), dv=full(dv), bias_mant=full(bias_mant), bias_exp=full(bias_exp),
                         vth=None if vth is None else full(vth), v_init=full(v_init),
                         v_reset=None if v_reset is None else full(v_reset), reset=reset, compare=compare,
                         spikes_per_step=spikes_per_step, delay_input=delay_input, has_current=has_current,
                         scale=1.0)


def run(q: fx.NeuronInts, a_in: np.ndarray) -> tuple[np.ndarray, list[fx.FixedState]]:
    """Outputs (T, *shape) and the state after each step, for inputs a_in (T, *shape)."""
    state, outs, states = fx.initial_fixed_state(q, a_in.shape[1:]), [], []
    for x in a_in:
        out, state = fx.neuron_step_fixed(x, state, q)
        outs.append(out)
        states.append(state)
    return np.stack(outs), states


def test_initial_state_broadcasts_v_init_over_a_batch_in_separate_arrays():
    state = fx.initial_fixed_state(ints(v_init=[5, -6, 7]), (2, N))
    assert state.v.tolist() == [[5, -6, 7]] * 2 and state.v.dtype == np.int64
    for zeros in (state.u, state.s, state.pending):
        assert zeros.shape == (2, N) and not zeros.any()
    assert len({id(a) for a in (state.u, state.v, state.s, state.pending)}) == 4


def test_without_extensions_it_is_lavas_lif_step():
    q = ints(du=100, dv=300, bias_mant=[3, -4, 5], bias_exp=1, vth=[2, 5, 9], v_init=[0, 700, -50], reset="subtract")
    a_in = np.random.default_rng(1).integers(-20, 40, (30, N))
    out, states = run(q, a_in)
    u, v = np.zeros(N, dtype=np.int64), q.v_init
    for t in range(len(a_in)):
        s, u, v = fx.lif_step_fixed(a_in[t], u, v, q.du, q.dv, q.bias_mant, q.bias_exp, q.vth, q.reset)
        for ours, lava in ((out[t], s), (states[t].s, s), (states[t].u, u), (states[t].v, v)):
            np.testing.assert_array_equal(ours, lava)
        assert not states[t].pending.any()
    assert out.any()


def test_v_reset_is_added_where_it_spiked_after_the_reset_to_zero():
    # v = 7 << 6 = 448 > 2 << 6: spikes, resets to 0, then gets v_reset; neuron 2 (a_in 1) does not spike.
    q = ints(vth=2, v_reset=[-30, 50, 70])
    out, states = run(q, np.array([[7, 7, 1]]))
    assert out.tolist() == [[1, 1, 0]] and states[0].v.tolist() == [-30, 50, 64]
    many = dataclasses.replace(q, spikes_per_step="many")  # a graded spike of 3 still resets once
    out, states = run(many, np.array([[7, 7, 1]]))
    assert out.tolist() == [[3, 3, 0]] and states[0].v.tolist() == [-30, 50, 64]
    subtract = dataclasses.replace(q, reset="subtract")  # v_reset belongs to the reset to zero only
    assert run(subtract, np.array([[7, 7, 1]]))[1][0].v.tolist() == [320, 320, 64]


def test_non_spiking_outputs_v_and_never_resets():
    q = ints(vth=None, dv=0)
    a_in = np.full((3, N), 2**17 - 1)  # u near 2^23 each step: v saturates at 2^23 - 1
    out, states = run(q, a_in)
    assert out[-1].tolist() == [2**23 - 1] * N and all(not st_.s.any() for st_ in states)
    assert out.tolist() == [st_.v.tolist() for st_ in states]


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.int64, (12, N), elements=st.integers(-300, 300)), st.integers(0, 4095), st.integers(0, 4095),
       st.sampled_from(fx.RESETS), st.booleans())
def test_delay_input_is_the_same_run_on_input_one_step_older(a_in, du, dv, reset, spiking):
    """Norse's voltage-first order: a_in waits a step in `pending`, which holds it meanwhile."""
    q = ints(du=du, dv=dv, bias_mant=[0, 7, -9], vth=[1, 4, 8] if spiking else None, v_init=[0, 300, -300],
             v_reset=[10, -10, 0] if reset == "zero" and spiking else None, reset=reset, has_current=True)
    delayed, states = run(dataclasses.replace(q, delay_input=True), a_in)
    older = np.concatenate([np.zeros((1, N), dtype=np.int64), a_in[:-1]])
    np.testing.assert_array_equal(delayed, run(q, older)[0])
    for t, state in enumerate(states):
        np.testing.assert_array_equal(state.pending, a_in[t])


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.int64, (6, 2, N), elements=st.integers(-(2**20), 2**20)), st.booleans(), st.booleans())
def test_a_batch_runs_as_its_samples_would_alone(a_in, delay_input, many):
    q = ints(du=[0, 500, 4095], dv=[10, 0, 4000], bias_mant=[5, -5, 0], vth=[3, 1, 100], v_init=[64, -64, 0],
             v_reset=[-7, 9, 0], spikes_per_step="many" if many else "one", delay_input=delay_input)
    batched, _ = run(q, a_in)
    for b in range(a_in.shape[1]):
        np.testing.assert_array_equal(batched[:, b], run(q, a_in[:, b])[0])
