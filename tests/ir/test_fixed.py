"""Tests of spikestack.ir.fixed: bit-exact against Lava itself, by hand, and by property.

Lava is the reference twice. (1) One runtime run (module-scoped fixture) of four LIF populations
fed through bit-accurate Dense processes from one shared RingBuffer source, recording u, v and
spikes: it checks the wiring (Dense's one-step delay, int32 ports). Its parameters are drawn so
that u overflows (also beyond what Lava's fold repairs), v saturates at both signs, int32 sums
wrap, weights are clipped and truncated and exponents shift both ways; the test checks that
before it compares. (2) Lava's process-model classes and weight utilities called directly, with
hypothesis inputs over the whole int32 range: no runtime, so hundreds of cases cost seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spikestack.errors import OptionsError
from spikestack.ir import discretise
from spikestack.ir import fixed as fx

T, N_IN = 50, 5
MODES = st.sampled_from(fx.SIGN_MODES)
INT32S = st.integers(-(2**31), 2**31 - 1)


def _populations():
    """Four Dense + LIF populations, each reading its own block of one source (so that Lava runs
    them as one network); seeded, so the coverage checks are deterministic."""
    rng = np.random.default_rng(7)

    def pop(n, weights, dense, du, dv, vth, bias_mant, bias_exp, high=32):
        data = rng.integers(-high + 1, high, (N_IN, T)) * (rng.random((N_IN, T)) < 0.5)
        return dict(data=data, weights=weights, dense=dense, du=int(du), dv=int(dv), vth=int(vth),
                    bias_mant=bias_mant, bias_exp=bias_exp,
                    u=rng.integers(-(2**23) + 1, 2**23, n), v=rng.integers(-(2**23) + 1, 2**23, n))

    big = pop(6, rng.integers(-256, 256, (6, N_IN)),  # graded, large a_in: u folds, v clips
              dict(num_message_bits=8, weight_exp=4), rng.integers(0, 64), rng.integers(0, 4096),
              rng.integers(0, fx.VTH_MAX + 1), rng.integers(-4096, 4096, 6), rng.integers(-3, 8, 6))
    huge = pop(4, rng.integers(-256, 256, (4, N_IN)),  # beyond all contracts: int32 wraps, u > 24 bits
               dict(num_message_bits=24, weight_exp=7), rng.integers(0, 4096), rng.integers(0, 4096),
               rng.integers(0, fx.VTH_MAX + 1), rng.integers(-4096, 4096, 4), rng.integers(0, 8, 4), 2**21)
    mixed = pop(6, rng.integers(-400, 400, (6, N_IN)),  # clipped, explicit sign mode, >> 1
                dict(num_weight_bits=6, weight_exp=-1, sign_mode="mixed"), rng.integers(0, 4096),
                rng.integers(0, 4096), rng.integers(0, 200), rng.integers(-50, 50, 6), rng.integers(0, 3, 6))
    inhib = pop(4, rng.integers(-300, 1, (4, N_IN)),  # inhibitory, clipped at -255, 7 bits
                dict(num_weight_bits=7), rng.integers(0, 4096), rng.integers(0, 4096),
                rng.integers(0, 100), rng.integers(0, 4096, 4), rng.integers(0, 3, 4))
    pops = [big, huge, mixed, inhib]
    data = np.concatenate([p["data"] for p in pops])
    for k, p in enumerate(pops):
        padded = np.zeros((len(p["u"]), len(data)), dtype=np.int64)
        padded[:, k * N_IN:(k + 1) * N_IN] = p["weights"]
        p.update(data=data, weights=padded)
    return data, pops


def _simulate(p):
    """Our chained model: Dense output of step t-1 is the LIF input of step t."""
    u, v = p["u"], p["v"]
    a_in = np.zeros(len(u), dtype=np.int64)
    out = {"s": [], "u": [], "v": []}
    for t in range(T):
        s, u, v = fx.lif_step_fixed(a_in, u, v, p["du"], p["dv"], p["bias_mant"], p["bias_exp"], p["vth"])
        for key, x in zip("suv", (s, u, v)):
            out[key].append(x)
        a_in = fx.dense_fixed(p["weights"], p["data"][:, t], **p["dense"])
    return {key: np.stack(x) for key, x in out.items()}


@pytest.fixture(scope="module")
def lava_run():
    pytest.importorskip("lava")
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    data, pops = _populations()
    source = Source(data=data)
    probes = []
    for p in pops:
        kwargs = dict(p["dense"])
        if "sign_mode" in kwargs:
            kwargs["sign_mode"] = SignMode[kwargs["sign_mode"].upper()]
        dense = Dense(weights=p["weights"], **kwargs)
        n = len(p["u"])
        lif = LIF(shape=(n,), u=p["u"], v=p["v"], du=p["du"], dv=p["dv"], vth=p["vth"],
                  bias_mant=p["bias_mant"], bias_exp=p["bias_exp"])
        source.s_out.connect(dense.s_in)
        dense.a_out.connect(lif.a_in)
        sink = Sink(shape=(n,), buffer=T)
        lif.s_out.connect(sink.a_in)
        monitors = {"u": Monitor(), "v": Monitor()}
        for name, monitor in monitors.items():
            monitor.probe(getattr(lif, name), T)
        probes.append((lif, sink, monitors))
    try:
        source.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        records = []
        for lif, sink, monitors in probes:
            rec = {name: m.get_data()[lif.name][name].astype(np.int64) for name, m in monitors.items()}
            rec["s"] = sink.data.get().T.astype(np.int64)
            records.append(rec)
    finally:
        source.stop()
    return pops, records


@pytest.mark.lava
def test_dense_lif_chain_is_bit_exact_with_lava(lava_run, monkeypatch):
    pops, records = lava_run
    seen = set()  # which overflow paths changed a value, and in which direction

    def spy(name, original):
        def wrapper(x, bits):
            out = original(x, bits)
            seen.update((name, int(d)) for d in np.unique(np.sign(out - x)) if d)
            return out
        monkeypatch.setattr(fx, name, wrapper)

    spy("_fold", fx._fold)  # what lif_registers calls (fold_signed etc. convert, then call these)
    spy("_clip", fx._clip)
    spy("_wrap", fx._wrap)
    ours = [_simulate(p) for p in pops]
    # The run must exercise the edge cases, or bit-exactness would prove little.
    assert {(f, d) for f in ("_fold", "_clip", "_wrap") for d in (1, -1)} <= seen
    assert any((np.abs(o["u"]) > 2**23).any() for o in ours), "no u left outside 24 bits by the fold"
    spikes = np.concatenate([o["s"].ravel() for o in ours])
    assert 0.01 < spikes.mean() < 0.99
    for p, mine, lava in zip(pops, ours, records):
        for key in "suv":
            np.testing.assert_array_equal(mine[key], lava[key], err_msg=f"{key} differs, dense={p['dense']}")


class _Channel:
    """Stands in for a Lava port: its channels carry int32 (numpy casts, i.e. wraps, on send),
    and an InPort adds what it reads to zeros of its own dtype (bool for Dense's s_in)."""

    def __init__(self, data=None):
        self.data = data

    def send(self, x):
        self.data = np.asarray(x).astype(np.int32)

    def recv(self):
        return np.zeros(self.data.shape, dtype=bool) + self.data.astype(np.int32)


@pytest.fixture(scope="module")
def lava_models():
    """Lava's own process-model classes, called directly: its arithmetic without a runtime."""
    pytest.importorskip("lava")
    from lava.proc.conv.utils import signed_clamp
    from lava.proc.dense.models import PyDenseModelBitAcc
    from lava.proc.lif.models import PyLifModelBitAcc
    from lava.utils import weightutils

    return PyLifModelBitAcc, PyDenseModelBitAcc, weightutils, signed_clamp


STATES = hnp.arrays(np.int64, 4, elements=st.one_of(st.integers(-(2**24), 2**24), INT32S))


@pytest.mark.lava
@settings(max_examples=200, deadline=None)
@given(STATES, STATES, STATES, st.integers(0, 4095), st.integers(0, 4095),
       hnp.arrays(np.int64, 4, elements=st.integers(-4096, 4095)),
       hnp.arrays(np.int64, 4, elements=st.integers(-8, 7)), st.integers(0, fx.VTH_MAX))
def test_lif_arithmetic_matches_lava_model(lava_models, a_in, u, v, du, dv, bias_mant, bias_exp, vth):
    model = lava_models[0]({})
    model.u, model.v, model.du, model.dv, model.vth = u.astype(np.int32), v.astype(np.int32), du, dv, vth
    model.bias_mant, model.bias_exp = bias_mant.astype(np.int16), bias_exp.astype(np.int16)
    model.scale_bias()  # the steps of AbstractPyLifModelFixed.run_spk, minus the ports
    model.scale_threshold()
    model.subthr_dynamics(activation_in=a_in.astype(np.int32))
    spikes = model.spiking_activation()
    model.reset_voltage(spikes)
    ours = fx.lif_step_fixed(a_in, u, v, du, dv, bias_mant, bias_exp, vth)
    for mine, theirs in zip(ours, (spikes, model.u, model.v)):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.lava
@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.int64, (3, 4), elements=st.integers(-400, 400)),
       hnp.arrays(np.int64, 4, elements=st.one_of(st.integers(0, 1), INT32S)),
       st.integers(-8, 7), st.integers(1, 8), st.sampled_from((None,) + fx.SIGN_MODES),
       st.sampled_from((0, 8, 24)))
def test_dense_matches_lava_model(lava_models, weights, spikes, weight_exp, bits, mode, message_bits):
    params = {"weight_exp": weight_exp, "num_weight_bits": bits}
    if mode is not None:
        params["sign_mode"] = lava_models[2].SignMode[mode.upper()]
    model = lava_models[1](params)
    model.weights, model.num_message_bits = weights.astype(np.int32), np.array([message_bits])
    model.a_buff, model.s_in, model.a_out = np.zeros(3, np.int32), _Channel(spikes), _Channel()
    model.run_spk()  # sends the old buffer, accumulates the new one ...
    model.a_out.send(model.a_buff)  # ... which the next step sends
    ours = fx.dense_fixed(weights, spikes, weight_exp, bits, mode, message_bits)
    np.testing.assert_array_equal(ours, model.a_out.data)


@pytest.mark.lava
@settings(deadline=None)
@given(hnp.arrays(np.int64, (3, 4), elements=st.integers(-600, 600)), MODES, st.integers(1, 8),
       st.integers(-(2**40), 2**40))
def test_weight_utils_and_conv_wrap_match_lava(lava_models, w, mode, bits, x):
    _, _, utils, signed_clamp = lava_models
    lava_mode = utils.SignMode[mode.upper()]
    assert utils.SignMode[fx.sign_mode_of(w).upper()] == utils.determine_sign_mode(w)
    np.testing.assert_array_equal(fx.clip_weights(w, mode), utils.clip_weights(w, lava_mode, 8))
    np.testing.assert_array_equal(fx.truncate_weights(w, mode, bits),
                                  utils.truncate_weights(w, lava_mode, bits))
    assert int(fx.conv_output_fixed(x)) == signed_clamp(x, bits=24)


# --- Hand-computed values ---------------------------------------------------------------


def step(a_in=0, u=0, v=0, du=0, dv=0, bias_mant=0, bias_exp=0, vth=fx.VTH_MAX, reset="zero", compare=">",
         spikes_per_step="one"):
    return tuple(int(x) for x in fx.lif_step_fixed(a_in, u, v, du, dv, bias_mant, bias_exp, vth, reset, compare,
                                                   spikes_per_step))


def test_at_or_above_threshold_and_graded_spike_counts():
    """Sinabs/Rockpool firing in integers: v = 128 = vth << 6 fires only under ">="; v = 3.5 thresholds
    sends one graded spike of 3 and keeps the half threshold (subtract), or resets to 0 (zero)."""
    assert step(a_in=2, du=4095, vth=2) == (0, 128, 128)  # strict: v == threshold does not fire
    assert step(a_in=2, du=4095, vth=2, compare=">=", reset="subtract") == (1, 128, 0)
    assert step(a_in=7, du=4095, vth=2, reset="subtract", spikes_per_step="many") == (3, 448, 64)
    assert step(a_in=7, du=4095, vth=2, reset="zero", spikes_per_step="many") == (3, 448, 0)
    assert step(a_in=1, du=4095, vth=2, spikes_per_step="many") == (0, 64, 64)
    assert step(a_in=-7, du=4095, vth=2, spikes_per_step="many") == (0, -448, -448)  # no spikes below zero


def test_decay_truncates_towards_zero_with_extra_lsb_on_u():
    # u: 1000 * (4096 - 100 - 1) = 3_995_000; / 4096 = 975.3 -> 975. v: 0 * ... + 975.
    assert step(u=1000, du=100) == (0, 975, 975)
    assert step(u=-1000, du=100) == (0, -975, -975)  # not floor's -976
    # v: 1000 * (4096 - 100) / 4096 = 975.6 -> 975 (no extra LSB on v)
    assert step(v=1000, dv=100) == (0, 0, 975)
    assert step(u=1, du=0) == (0, 0, 0)  # du=0 still decays u: 4095/4096 of 1 truncates to 0


def test_input_shift_fold_bias_threshold_and_reset():
    assert step(a_in=3, du=4095) == (0, 192, 192)  # a_in << 6
    assert step(a_in=2**17)[1] == 2**23  # +2^23 is kept ...
    assert step(a_in=-(2**17))[1] == 2**23  # ... and -2^23 folds up to it
    assert step(a_in=2**17 + 1)[1] == -(2**23) + 64
    assert step(u=2**22, v=2**23 - 10, dv=0, vth=fx.VTH_MAX)[::2] == (1, 0)  # clipped to 2^23-1 > vth<<6
    assert step(a_in=-(2**16), v=-(2**23) + 5)[2] == -(2**23) + 1
    assert step(bias_mant=-5, bias_exp=-1, vth=0)[2] == -3  # arithmetic >> rounds to -inf
    assert step(bias_mant=3, bias_exp=2)[2] == 12
    assert step(v=640, vth=10) == (0, 0, 640)  # strict: v == vth << 6 does not spike
    assert step(v=641, vth=10) == (1, 0, 0)
    assert step(v=641, vth=10, reset="subtract") == (1, 0, 1)
    with pytest.raises(OptionsError):
        step(reset="to_rest")


def test_dense_weight_handling():
    w = np.array([[3, -3, 255]])
    assert fx.sign_mode_of(w) == "mixed"
    assert fx.effective_weights(w).tolist() == [[2, -4, 254]]  # mixed drops the LSB, floor
    assert fx.dense_fixed(w, [1, 1, 1]).tolist() == [252]
    assert fx.dense_fixed(w, [2, 0, 1], num_message_bits=8).tolist() == [258]
    assert fx.dense_fixed(w, [2, 0, 1]).tolist() == [256]  # binary: 2 is just a spike
    assert fx.dense_fixed([[-3, 1]], [1, 0], weight_exp=-3).tolist() == [-1]  # -4 >> 3
    assert fx.dense_fixed([[5]], [1], weight_exp=2).tolist() == [20]
    inhib = np.array([[-3, -300]])
    assert fx.effective_weights(inhib, num_weight_bits=7).tolist() == [[-2, -254]]  # towards 0
    assert fx.effective_weights([[300, 7]], "excitatory", 6).tolist() == [[252, 4]]
    with pytest.raises(OptionsError):
        fx.truncate_weights(w, "both", 8)
    # 9 bits keep a mixed mantissa's lowest bit (what netx's rescaled weights amount to in Lava's Dense)
    assert fx.truncate_weights(w, "mixed", 9).tolist() == [[3, -3, 255]]
    with pytest.raises(OptionsError):
        fx.truncate_weights(w, "excitatory", 9)
    with pytest.raises(OptionsError):
        fx.truncate_weights(w, "mixed", 10)


def test_conv_wrap_decay_and_quantisation_by_hand():
    assert fx.conv_output_fixed([2**23, -(2**23), 2**24 + 5]).tolist() == [-(2**23), -(2**23), 5]
    assert discretise.decay_to_int([0.0, 0.1, 1.0]).tolist() == [0, 410, 4095]
    assert int(discretise.decay_to_int(0.1, offset=fx.U_DECAY_OFFSET)) == 409
    with pytest.raises(OptionsError):
        discretise.decay_to_int(1.5)
    assert int(discretise.quantise_threshold(1.0, 254.0)) == 254
    with pytest.raises(OptionsError):
        discretise.quantise_threshold(1e4, 254.0)
    # bias target = b * 254 * 64: 0.01 -> 162.56 -> (163, 0); 10 -> 162560 = 2540 * 2^6
    mant, bexp = discretise.quantise_bias([0.01, 10.0], 254.0)
    assert (mant.tolist(), bexp.tolist()) == ([163, 2540], [0, 6])
    assert discretise.relative_error([1.0, 2.0], [254, 508], 254.0) == 0.0
    assert discretise.relative_error([10.0], mant[1:], 254.0 * 64, bexp[1:]) == 0.0


# --- Properties -------------------------------------------------------------------------


@given(st.integers(-(2**40), 2**40), st.integers(2, 33))
def test_wrap_clip_stay_in_range(x, bits):
    half = 2 ** (bits - 1)
    wrapped = int(fx.wrap_signed(x, bits))
    assert -half <= wrapped < half and (wrapped - x) % (2 * half) == 0
    assert -half < int(fx.clip_signed(x, bits)) < half
    if abs(x) < 3 * half:  # the domain where Lava's one-step fold returns into range
        folded = int(fx.fold_signed(x, bits))
        assert -half < folded <= half and (folded - x) % (2 * half) == 0


@given(hnp.arrays(np.int64, (3, 4), elements=st.integers(-600, 600)), MODES, st.integers(1, 8))
def test_truncate_weights_idempotent(w, mode, bits):
    once = fx.truncate_weights(w, mode, bits)
    np.testing.assert_array_equal(fx.truncate_weights(once, mode, bits), once)
    eff = fx.effective_weights(w, mode, bits)
    np.testing.assert_array_equal(fx.effective_weights(eff, mode, bits), eff)
    assert np.abs(eff).max() <= 256


@settings(max_examples=50)
@given(hnp.arrays(np.int64, (2, 3, 4), elements=INT32S), hnp.arrays(np.int64, (2, 3, 4), elements=INT32S),
       st.integers(0, 4095), st.integers(0, 4095), st.integers(0, fx.VTH_MAX), st.sampled_from(fx.RESETS))
def test_lif_step_broadcasts_over_batch(a_in, u, du, dv, vth, reset):
    u = fx.wrap_signed(u, 24)
    v = np.zeros_like(u)
    batched = fx.lif_step_fixed(a_in, u, v, du, dv, 1, 0, vth, reset)
    for i in np.ndindex(2, 3):
        single = fx.lif_step_fixed(a_in[i], u[i], v[i], du, dv, 1, 0, vth, reset)
        for b, s in zip(batched, single):
            np.testing.assert_array_equal(b[i], s)
