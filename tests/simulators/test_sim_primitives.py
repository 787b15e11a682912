"""Every NIR primitive in float mode, on tiny graphs, against references written out here with
numpy loops (the discretisation as lower.py documents it: with a = dt/tau, Euler x <- (1-a) x + a in).
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spikestack.errors import DataError, OptionsError, UnsupportedError
from spikestack.ir import build_graph, dynamics, lower_graph, resolve_options
from spikestack.simulators import simulate
from spikestack.simulators.neurons import heaviside
from sim_fixtures import one_torch_thread  # noqa: F401  (fixture)

RNG = np.random.default_rng(5)
DT = 1e-3


def program(nodes: dict, edges: list, **options):
    graph = build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return lower_graph(graph, resolve_options(dt=DT, **options))


def chain(*nodes, in_shape):
    """Input -> nodes... -> Output, named n0, n1, ..."""
    named = {"input": nir.Input(input_type={"input": np.array(in_shape)})}
    named.update({f"n{k}": node for k, node in enumerate(nodes)})
    named["output"] = nir.Output(output_type={"output": np.array([1])})
    names = list(named)
    return named, list(zip(names[:-1], names[1:]))


def run(nodes, edges, x, record=(), **options):
    return simulate(program(nodes, edges, **options), x, record=record, dtype=np.float64)


def test_linear_scale_threshold():
    w, scale, theta = RNG.normal(size=(3, 4)), np.array([0.5, -2.0, 1.5]), np.array([0.1, 0.0, -0.2])
    x = RNG.normal(size=(6, 2, 4))
    out = run(*chain(nir.Linear(weight=w), nir.Scale(scale=scale), nir.Threshold(threshold=theta), in_shape=[4]), x).output
    np.testing.assert_array_equal(out, (np.einsum("tbi,oi->tbo", x, w) * scale > theta).astype(float))


def _conv1d_loops(x, w, b, stride, pad, dil, groups):
    cin_g, cout = w.shape[1], w.shape[0]
    xp = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)])
    n_out = (x.shape[-1] + 2 * pad - dil * (w.shape[2] - 1) - 1) // stride + 1
    y = np.zeros(x.shape[:-2] + (cout, n_out))
    for o in range(cout):
        g = o // (cout // groups)
        for p in range(n_out):
            for c in range(cin_g):
                for k in range(w.shape[2]):
                    y[..., o, p] += w[o, c, k] * xp[..., g * cin_g + c, p * stride + k * dil]
        y[..., o, :] += b[o]
    return y


@pytest.mark.parametrize("padding, stride, dilation, groups", [("same", 1, 2, 2), ("valid", 2, 1, 1), (1, 2, 1, 2)])
def test_conv1d(padding, stride, dilation, groups):
    w, b = RNG.normal(size=(4, 4 // groups, 3)), RNG.normal(size=4)
    x = RNG.normal(size=(3, 2, 4, 9))
    conv = nir.Conv1d(input_shape=9, weight=w, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=b)
    out = run(*chain(conv, in_shape=[4, 9]), x).output
    pad = {"same": dilation, "valid": 0}.get(padding, padding)
    np.testing.assert_allclose(out, _conv1d_loops(x, w, b, stride, pad, dilation, groups), atol=1e-12)


def test_pools_and_flatten():
    x = RNG.integers(0, 3, size=(2, 3, 2, 5, 5)).astype(float)
    for kind, divide in ((nir.SumPool2d, 1), (nir.AvgPool2d, 4)):
        pool = kind(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([1, 1]))
        out = run(*chain(pool, nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0, end_dim=-1),
                         in_shape=[2, 5, 5]), x).output
        padded = np.pad(x, [(0, 0)] * 3 + [(1, 1), (1, 1)])[..., :6, :6]  # the windows cover 6x6
        expected = padded.reshape(2, 3, 2, 3, 2, 3, 2).sum(axis=(4, 6)) / divide
        np.testing.assert_allclose(out, expected.reshape(2, 3, 18))


def test_delay_per_element():
    steps = np.array([0, 1, 3])
    x = RNG.normal(size=(8, 2, 3))
    out = run(*chain(nir.Delay(delay=steps * DT), in_shape=[3]), x).output
    for k, d in enumerate(steps):
        np.testing.assert_array_equal(out[d:, :, k], x[: 8 - d, :, k])
        np.testing.assert_array_equal(out[:d, :, k], 0)


def _leaky(alpha, gain, bias, x, v0=0.0):
    v, out = v0, []
    for xt in x:
        v = alpha * v + gain * xt + bias
        out.append(v)
    return np.array(out)


def test_non_spiking_neurons_integrate():
    n, tau, tau_syn, r, leak = 3, 5e-3, 2e-3, 2.0, 0.3
    x = RNG.normal(size=(20, 2, n))
    a, a_syn = DT / tau, DT / tau_syn
    ones = np.ones(n)
    cases = {
        "I": (nir.I(r=r * ones), _leaky(1.0, DT * r, 0.0, x)),
        "LI": (nir.LI(tau=tau * ones, r=r * ones, v_leak=leak * ones), _leaky(1 - a, a * r, a * leak, x)),
        "CubaLI": (nir.CubaLI(tau_syn=tau_syn * ones, tau_mem=tau * ones, r=r * ones, v_leak=leak * ones, w_in=1.5 * ones),
                   _leaky(1 - a, a * r, a * leak, _leaky(1 - a_syn, a_syn * 1.5, 0.0, x))),
    }
    for kind, (node, expected) in cases.items():
        np.testing.assert_allclose(run(*chain(node, in_shape=[n]), x).output, expected, rtol=1e-12, err_msg=kind)


def test_if_subtractive_with_initial_potential():
    theta, r = 1.0, 700.0  # IF integrates dt * r * x: 0.7 x per step at dt = 1e-3
    x = RNG.random((30, 3, 2)) * 0.9
    node = nir.IF(r=np.full(2, r), v_threshold=np.full(2, theta), v_reset=np.zeros(2))
    result = run(*chain(node, in_shape=[2]), x, record=["n0"], reset="subtract", initial_potential=0.5)
    v, spikes, vs = np.full((3, 2), theta / 2), [], []
    for xt in x:
        v = v + DT * r * xt
        s = v > theta
        v = v - theta * s
        spikes.append(s)
        vs.append(v)
    np.testing.assert_array_equal(result.output, np.array(spikes))
    np.testing.assert_allclose(result.recordings["n0"]["v"], np.array(vs), rtol=1e-12)


def _cuba(order: str, x, alpha_i, alpha_v, theta):
    i = v = np.zeros(x.shape[1:])
    out = []
    for xt in x:
        i_new = alpha_i * i + (1 - alpha_i) * xt
        v = alpha_v * v + (1 - alpha_v) * (i_new if order == "current_first" else i)
        i = i_new
        s = v > theta
        v = np.where(s, 0.0, v)
        out.append(s)
    return np.array(out)


@pytest.mark.parametrize("order", ["current_first", "voltage_first"])
def test_cuba_lif_current_order(order):
    n = 4
    node = nir.CubaLIF(tau_syn=np.full(n, 2e-3), tau_mem=np.full(n, 4e-3), r=np.ones(n), v_leak=np.zeros(n),
                       v_threshold=np.full(n, 0.3), v_reset=np.zeros(n), w_in=np.ones(n))
    x = RNG.random((40, 2, n)) * 2
    out = run(*chain(node, in_shape=[n]), x, cuba_order=order).output
    np.testing.assert_array_equal(out, _cuba(order, x, 0.5, 0.75, 0.3))
    assert 0 < out.mean() < 1


def test_fan_in_and_recurrence_read_the_previous_step():
    """Two inputs summed into one LIF, which feeds itself through a biased Affine on a back
    edge: at step t it reads W s[t-1] + b, and at t = 0 the Affine's response to no spikes, b."""
    n, w_in, w_rec, b = 3, RNG.normal(size=(3, 2)), RNG.normal(size=(3, 3)), RNG.normal(size=3) * 0.2
    lif = nir.LIF(tau=np.full(n, 4e-3), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, 0.2), v_reset=np.zeros(n))
    nodes = {"a": nir.Input(input_type={"input": np.array([2])}), "b": nir.Input(input_type={"input": np.array([3])}),
             "fc": nir.Linear(weight=w_in), "lif": lif, "rec": nir.Affine(weight=w_rec, bias=b),
             "output": nir.Output(output_type={"output": np.array([n])})}
    edges = [("a", "fc"), ("fc", "lif"), ("b", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")]
    xa, xb = RNG.random((50, 2, 2)), RNG.random((50, 2, 3)) * 0.5
    out = run(nodes, edges, {"a": xa, "b": xb}).output
    v, s, expected = np.zeros((2, n)), np.zeros((2, n)), []
    for t in range(50):
        drive = xa[t] @ w_in.T + xb[t] + s @ w_rec.T + b
        v = 0.75 * v + 0.25 * drive
        s = (v > 0.2).astype(float)
        v = np.where(s > 0, 0.0, v)
        expected.append(s)
    np.testing.assert_array_equal(out, np.array(expected))
    assert 0 < out.mean() < 1


def test_errors_are_one_line_and_name_the_problem():
    nodes, edges = chain(nir.Linear(weight=np.ones((2, 3))), in_shape=[3])
    prog = program(nodes, edges)
    with pytest.raises(DataError, match=r"expected shape \(T, B, 3\).*got \(4, 3\)"):
        simulate(prog, np.zeros((4, 3)))
    with pytest.raises(DataError, match="expected inputs"):
        simulate(prog, {"x": np.zeros((4, 1, 3))})
    with pytest.raises(OptionsError, match="mode"):
        simulate(prog, np.zeros((4, 1, 3)), mode="analog")
    with pytest.raises(OptionsError, match="'nope'"):
        simulate(prog, np.zeros((4, 1, 3)), record=["nope"])
    with pytest.raises(DataError, match="loihi mode takes spikes"):
        simulate(prog, np.full((4, 1, 3), 0.5), mode="loihi")
    lif = nir.LIF(tau=np.full(2, 4e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2), v_reset=np.zeros(2))
    nodes, edges = chain(nir.Linear(weight=np.ones((2, 3))), lif, in_shape=[3])
    with pytest.raises(UnsupportedError, match="node 'n1'.*reset_timing"):
        simulate(program(nodes, edges, reset_timing="delayed"), np.zeros((4, 1, 3)), mode="loihi")


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.float32, (7,), elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
def test_fast_heaviside_is_the_dynamics_heaviside(x):
    """The simulator injects its own spike function into ir.dynamics.neuron_step: it must be the
    strict Heaviside of ir.dynamics for every finite value, zeros and subnormals included."""
    t = torch.as_tensor(x)
    np.testing.assert_array_equal(heaviside(t).numpy(), dynamics.heaviside(t).numpy())


def test_read_only_parameters_are_copied_without_a_warning():
    # Programs hold read-only parameter arrays; handing them to torch uncopied warns (and would let
    # an in-place kernel write into the program). The conv net's kernels used to.
    import warnings

    from spikestack.ir import load_graph
    from conftest import FIXTURES

    program = lower_graph(load_graph(FIXTURES / "cnn_sinabs.nir"), resolve_options(preset="sinabs"))
    x = (np.random.default_rng(0).random((3, 2, *program.op(program.inputs[0]).out_shape)) < 0.1).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        simulate(program, x)
