"""quantise_program: integers worked out by hand from the module's documented rules, the error
report, what Loihi cannot express, and a property over random dense layers."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikestack.errors import OptionsError, UnsupportedError
from spikestack.ir import build_graph, fixed, lower_graph, resolve_options
from spikestack.ir.quantise import quantise_program


def _program(nodes, edges, **options):
    graph = build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return lower_graph(graph, resolve_options(dt=1e-3, **options))


def _lif(n, tau=1e-2, r=10.0, threshold=1.0, v_leak=0.0, v_reset=0.0):
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.full(n, v_leak),
                   v_threshold=np.full(n, threshold), v_reset=np.full(n, v_reset))


def _dense(w, b, neuron, **options):
    n_out, n_in = np.shape(w)
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}), "fc": nir.Affine(weight=np.asarray(w, float), bias=np.asarray(b, float)),
             "lif": neuron, "output": nir.Output(output_type={"output": np.array([n_out])})}
    return _program(nodes, [("input", "fc"), ("fc", "lif"), ("lif", "output")], **options)


def test_affine_lif_by_hand():
    # alpha_v = 0.9, gain_v = (dt/tau) r = 1. Scale limits: threshold (131071 >> 2) / 1 = 32767,
    # weights 254 * 2^7 / 1.0 = 32512 -> s = 32512. Targets 0.5 s = 16256, -1.0 s = -32512 need
    # exponent 7: /128 -> 127, -254, rounded to the mixed-sign step of 2 -> 128 (half to even), -254.
    # The bias 0.2 enters v as 0.2 * s * 64 = 416153.6 = 3251.2 * 2^7 -> (3251, 7).
    q, report = quantise_program(_dense([[0.5, -1.0]], [0.2], _lif(1)))
    syn, neuron = q.synapses["fc"], q.neurons["lif"]
    assert syn.weight.tolist() == [[128, -254]] and syn.weight_exp == 7 and syn.bias is None
    assert neuron.vth.tolist() == [32512] and neuron.dv.tolist() == [410] and neuron.du.tolist() == [4095]
    assert (neuron.bias_mant.tolist(), neuron.bias_exp.tolist()) == ([3251], [7])
    assert neuron.scale == 32512 * 64 and not neuron.has_current and neuron.v_reset is None
    assert report.errors["fc"]["weight"] == pytest.approx(abs(128 * 128 - 16256) / np.hypot(16256, 32512))
    assert report.errors["lif"]["dv"] == pytest.approx(abs(410 - 409.6) / 409.6)
    assert report.worst()["fc"] == max(report.errors["fc"].values())
    assert "fc: worst" in str(report)


def test_neuron_extensions_are_carried():
    # subtractive reset, a non-zero v_reset, the initial potential, and Norse's current order
    q, _ = quantise_program(_dense([[1.0]], [0.0], _lif(1, v_reset=-0.5), reset="zero", initial_potential=0.5))
    n = q.neurons["lif"]
    assert n.v_reset.tolist() == [round(-0.5 * n.scale)] and n.v_init.tolist() == [round(0.5 * n.scale)]
    cuba = nir.CubaLIF(tau_syn=np.full(2, 2e-3), tau_mem=np.full(2, 4e-3), r=np.ones(2), v_leak=np.zeros(2),
                       v_threshold=np.ones(2), v_reset=np.zeros(2), w_in=np.array([1.0, 2.0]))
    q, _ = quantise_program(_dense([[1.0, 0.0], [0.0, 1.0]], [0.5, 0.0], cuba, reset="subtract", cuba_order="voltage_first"))
    n, syn = q.neurons["lif"], q.synapses["fc"]
    assert n.reset == "subtract" and n.delay_input and n.has_current
    assert n.du.tolist() == [2047, 2047]  # u decays by (du + 1) / 4096 = 1/2 = dt/tau_syn
    assert n.dv.tolist() == [1024, 1024]
    # gain g = gain_i * gain_v = (0.5 w_in) * 0.25 per row; the row with w_in = 2 gets twice the weight
    w = syn.weight * 2.0**syn.weight_exp
    assert w[1, 1] == pytest.approx(2 * w[0, 0], rel=0.01)
    assert syn.bias is not None and syn.bias[0] == round(0.5 * 0.125 * n.scale / 64)  # a current keeps its bias


def test_pools_stay_exact():
    shape = (2, 4, 4)
    nodes = {"input": nir.Input(input_type={"input": np.array(shape)}),
             "sum": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "avg": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([2, 1, 1])}, start_dim=0, end_dim=-1),
             "fc": nir.Linear(weight=np.ones((3, 2))), "lif": _lif(3), "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "sum"), ("sum", "avg"), ("avg", "flat"), ("flat", "fc"), ("fc", "lif"), ("lif", "output")]
    q, report = quantise_program(_program(nodes, edges))
    assert np.all(q.synapses["sum"].weight == 1) and np.all(q.synapses["avg"].weight == 1)  # 1/4 at scale 4
    assert report.errors["sum"]["weight"] == 0 and report.errors["avg"]["weight"] == 0


def test_what_loihi_cannot_express():
    with pytest.raises(UnsupportedError, match="node 'lif'.*reset_timing"):
        quantise_program(_dense([[1.0]], [0.0], _lif(1), reset_timing="delayed"))
    nodes = {"input": nir.Input(input_type={"input": np.array([2])}), "lif": _lif(2),
             "output": nir.Output(output_type={"output": np.array([2])})}
    with pytest.raises(UnsupportedError, match="node 'lif'.*synapse op"):
        quantise_program(_program(nodes, [("input", "lif"), ("lif", "output")]))
    row = np.ones((1, 2))  # one channel, two positions: different gains cannot fold into one kernel
    lif = nir.LIF(tau=np.array([[1e-2, 2e-2]]), r=row, v_leak=0 * row, v_threshold=row, v_reset=0 * row)
    conv = nir.Conv1d(input_shape=2, weight=np.ones((1, 1, 1)), stride=1, padding=0, dilation=1, groups=1, bias=np.zeros(1))
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 2])}), "conv": conv, "lif": lif,
             "output": nir.Output(output_type={"output": np.array([1, 2])})}
    with pytest.raises(UnsupportedError, match="node 'conv'.*per output channel"):
        quantise_program(_program(nodes, [("input", "conv"), ("conv", "lif"), ("lif", "output")]))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 50), st.sampled_from([0, 1, 2, 3]))
def test_dense_weights_within_half_a_step(seed, threshold, headroom):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(5, 4)) * rng.choice([1e-3, 1.0, 1e3])
    program = _dense(w, np.zeros(5), _lif(5, threshold=threshold))
    q, report = quantise_program(program, headroom_bits=headroom)
    syn, n = q.synapses["fc"], q.neurons["lif"]
    s = n.scale / 64
    step = 2 * 2.0**syn.weight_exp  # mixed signs: mantissas are even
    assert np.all(np.abs(syn.weight * 2.0**syn.weight_exp - w * s) <= step / 2 * (1 + 1e-9))
    assert np.all(n.vth <= fixed.VTH_MAX >> headroom) and np.all(np.abs(syn.weight) <= 254)
    np.testing.assert_array_equal(fixed.effective_weights(syn.weight), syn.weight)  # Lava keeps them as they are
    assert 0 <= report.worst()["fc"] < 0.5


def test_headroom_from_a_float_run_keeps_negative_drift():
    """An IF neuron driven by a -1 weight every step: v = 0.5 - t thresholds (by hand). With the
    default 2 bits of headroom Loihi's v clips at -(2^23 - 1) / (vth << 6), about -4 thresholds;
    with the headroom derived from a float run that saw v reach -40 it follows v = 0.5 - t."""
    from spikestack.ir.quantise import headroom_from_run
    from spikestack.ir.run import Run

    neuron = nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1))
    program = _program({"input": nir.Input(input_type={"input": np.array([1])}), "fc": nir.Affine(weight=np.array([[-1.0]]), bias=np.zeros(1)),
                        "if": neuron, "output": nir.Output(output_type={"output": np.array([1])})},
                       [("input", "fc"), ("fc", "if"), ("if", "output")], reset="subtract", initial_potential=0.5)
    expected_v = 0.5 - np.arange(1, 41, dtype=float)
    bits = headroom_from_run(program, Run(outputs={}, recordings={"if": {"v": expected_v.reshape(-1, 1, 1)}}))
    assert bits == {"if": 7}  # ceil(log2(39.5 + 1)) + 1
    default, _ = quantise_program(program)
    roomy, _ = quantise_program(program, bits)
    n_default, n_roomy = default.neurons["if"], roomy.neurons["if"]
    assert (fixed.VTH_MAX >> 2) >= n_default.vth[0] > (fixed.VTH_MAX >> 3)
    floor_default = -(2**23 - 1) / n_default.scale
    assert -4.1 < floor_default < -3.9
    # the lowest v each quantisation can hold, in thresholds, covers the run only with the headroom
    assert -(2**23 - 1) / n_roomy.scale < expected_v.min()


def test_a_bias_too_large_for_the_scale_names_the_neuron_in_one_short_line():
    # By hand, as above: s = 32512, so the bias reaches v as b * s * 64; 13-bit mantissa x 2^7 holds
    # 4095 * 128 = 524160, i.e. b <= 0.2519. A bias of 0.3 cannot be expressed at this scale.
    quantise_program(_dense([[0.5, -1.0]], [0.25], _lif(1)))  # just fits
    with pytest.raises(OptionsError) as info:
        quantise_program(_dense([[0.5, -1.0]] * 300, [0.3] * 300, _lif(300)))
    message = str(info.value)
    assert message.startswith("node 'lif': bias up to 0.3 x scale 32512") and "headroom" in message
    assert "\n" not in message and len(message) < 200  # a summary, not the 300 biases
