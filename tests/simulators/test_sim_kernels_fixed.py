"""The fast Loihi synapse kernels equal `ir.fixed.dense_fixed` and an integer convolution written
here with loops, including where the float products must fall back to wider arithmetic."""

from __future__ import annotations

import nir
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikestack.ir import build_graph, fixed, lower_graph, resolve_options
from spikestack.ir.quantise import SynapseInts
from spikestack.simulators.kernels import Parallel
from spikestack.simulators.kernels_fixed import FIXED_KERNELS
from sim_fixtures import one_torch_thread  # noqa: F401  (fixture)


def _op(node, in_shape):
    nodes = {"input": nir.Input(input_type={"input": np.array(in_shape)}), "n": node,
             "output": nir.Output(output_type={"output": np.array([1])})}
    graph = build_graph(nir.NIRGraph(nodes=nodes, edges=[("input", "n"), ("n", "output")], type_check=False))
    return lower_graph(graph, resolve_options(dt=1.0)).op("n")


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(fixed.WEIGHT_EXP_MIN, fixed.WEIGHT_EXP_MAX),
       st.sampled_from([1, 3, 2**12, 2**24, 2**45]))
def test_dense_equals_lava_arithmetic(seed, exp, high):
    rng = np.random.default_rng(seed)
    w = rng.integers(-300, 300, (5, 7))
    x = rng.integers(0, high + 1, (4, 7)) * (rng.random((4, 7)) < 0.5)
    op = _op(nir.Linear(weight=w.astype(float)), [7])
    got = FIXED_KERNELS[type(op.synapse)](op, SynapseInts(w, exp, None), Parallel(1))(torch.as_tensor(x)).numpy()
    np.testing.assert_array_equal(got, fixed.dense_fixed(w, x, exp, num_message_bits=24))
    if high == 1:  # spikes: Lava's binary path gives the same
        np.testing.assert_array_equal(got, fixed.dense_fixed(w, x, exp))


def _conv_loops(x, w, stride, pad):
    b, c_in, h, v = x.shape
    c_out, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (v + 2 * pad - kw) // stride + 1
    y = np.zeros((b, c_out, oh, ow), dtype=object)  # Python ints: no overflow in the reference
    for o in range(c_out):
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw].astype(object)
                y[:, o, i, j] = (patch * w[o].astype(object)).sum(axis=(1, 2, 3))
    return y


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([1, 2**10, 2**20, 2**50]), st.integers(1, 2), st.integers(0, 1))
def test_conv_equals_integer_convolution_wrapped_to_24_bits(seed, high, stride, pad):
    rng = np.random.default_rng(seed)
    w = rng.integers(-256, 256, (3, 2, 3, 3))
    x = rng.integers(0, high + 1, (2, 2, 5, 5))
    op = _op(nir.Conv2d(input_shape=(5, 5), weight=w.astype(float), stride=stride, padding=pad, dilation=1, groups=1,
                        bias=np.zeros(3)), [2, 5, 5])
    got = FIXED_KERNELS[type(op.synapse)](op, SynapseInts(w, 0, None), Parallel(1))(torch.as_tensor(x)).numpy()
    expected = np.array([int(fixed.conv_output_fixed(int(a))) for a in _conv_loops(x, w, stride, pad).ravel()])
    np.testing.assert_array_equal(got.ravel(), expected)


def test_bias_and_scale():
    op = _op(nir.Scale(scale=np.array([2.0, -1.0, 0.5])), [3])
    x = torch.as_tensor(np.array([[3, 4, 5]]))
    scale = FIXED_KERNELS[type(op.synapse)](op, SynapseInts(np.array([4, -2, 1]), -2, None), Parallel(1))
    # Lava's Dense drops the LSB of mixed-sign weights (1 -> 0); (12, -8, 0) >> 2 = (3, -2, 0)
    np.testing.assert_array_equal(scale(x).numpy(), [[3, -2, 0]])
    np.testing.assert_array_equal(scale(torch.tensor([[3, 5, 5]])).numpy(), [[3, -3, 0]])  # -10 >> 2: floor
    op = _op(nir.Affine(weight=np.ones((2, 3)), bias=np.ones(2)), [3])
    got = FIXED_KERNELS[type(op.synapse)](op, SynapseInts(np.array([[2, 4, 6], [8, 10, 12]]), 1, np.array([5, -5])), Parallel(1))(x)
    np.testing.assert_array_equal(got.numpy(), [[(6 + 16 + 30) * 2 + 5, (24 + 40 + 60) * 2 - 5]])


def test_dense_event_driven_path():
    """With few active inputs the kernel gathers their weight rows instead of a full product."""
    rng = np.random.default_rng(2)
    w = rng.integers(-256, 256, (6, 40))
    x = np.zeros((3, 40), dtype=np.int64)
    x[0, 5], x[2, 17] = 1, 3  # 2 of 40 rows active: below the gather threshold
    op = _op(nir.Linear(weight=w.astype(float)), [40])
    got = FIXED_KERNELS[type(op.synapse)](op, SynapseInts(w, -2, None), Parallel(1))(torch.as_tensor(x)).numpy()
    np.testing.assert_array_equal(got, fixed.dense_fixed(w, x, -2, num_message_bits=24))
