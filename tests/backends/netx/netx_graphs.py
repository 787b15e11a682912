"""Small seeded graphs that netx can hold (reset to zero, v from 0, pools only into a neuron), for the
netx tests and bench/netx_parity.py: a dense MLP, a conv net, a conv net with a sum pool, a recurrent
net, and an LIF net with biases.

Weights are drawn so that every layer fires a few to ~30 % of the steps on input spikes at p = 0.2
(checked by the tests, which would otherwise compare silent layers)."""

from __future__ import annotations

import nir
import numpy as np

METADATA = {"spikestack": {"dt": 1.0, "reset": "zero", "fixed_point": "netx"}}


def _cuba(shape, tau_syn=4.0, tau_mem=8.0, threshold=1.0) -> nir.CubaLIF:
    ones = np.ones(shape)
    return nir.CubaLIF(tau_syn=ones * tau_syn, tau_mem=ones * tau_mem, r=ones, v_leak=ones * 0.0,
                       v_threshold=ones * threshold, v_reset=ones * 0.0, w_in=ones)


def _graph(nodes: dict, edges: list) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=METADATA, type_check=False)


def dense_mlp(seed: int = 0) -> nir.NIRGraph:
    """34 -> 50 -> 10 CubaLIF (tau_syn 4, tau_mem 8 steps)."""
    rng = np.random.default_rng(seed)
    return _graph({"input": nir.Input(np.array([34])),
                   "fc1": nir.Affine(rng.normal(0.5, 1.5, (50, 34)), np.zeros(50)), "lif1": _cuba(50),
                   "fc2": nir.Affine(rng.normal(0.1, 1.2, (10, 50)), np.zeros(10)), "lif2": _cuba(10),
                   "output": nir.Output(np.array([10]))},
                  [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")])


def conv_net(seed: int = 0) -> nir.NIRGraph:
    """(2, 10, 10) -> conv 4x3x3 pad 1 -> CubaLIF -> conv 8x3x3 stride 2 pad 1 -> CubaLIF -> Flatten
    -> Affine 10 -> CubaLIF."""
    rng = np.random.default_rng(seed)
    return _graph({"input": nir.Input(np.array([2, 10, 10])),
                   "conv1": nir.Conv2d((10, 10), rng.normal(0.4, 1.0, (4, 2, 3, 3)), 1, 1, 1, 1, np.zeros(4)),
                   "lif1": _cuba((4, 10, 10)),
                   "conv2": nir.Conv2d((10, 10), rng.normal(0.3, 0.8, (8, 4, 3, 3)), 2, 1, 1, 1, np.zeros(8)),
                   "lif2": _cuba((8, 5, 5)),
                   "flat": nir.Flatten({"input": np.array([8, 5, 5])}, 0),
                   "fc": nir.Affine(rng.normal(0.3, 0.8, (10, 200)), np.zeros(10)), "lif3": _cuba(10),
                   "output": nir.Output(np.array([10]))},
                  [("input", "conv1"), ("conv1", "lif1"), ("lif1", "conv2"), ("conv2", "lif2"), ("lif2", "flat"),
                   ("flat", "fc"), ("fc", "lif3"), ("lif3", "output")])


def pool_net(seed: int = 0) -> nir.NIRGraph:
    """(2, 10, 10) -> conv 4x3x3 pad 1 -> CubaLIF -> 2x2 SumPool2d -> CubaLIF -> Flatten -> Affine 10 ->
    CubaLIF: the pool into a neuron becomes a grouped conv layer."""
    rng = np.random.default_rng(seed)
    return _graph({"input": nir.Input(np.array([2, 10, 10])),
                   "conv1": nir.Conv2d((10, 10), rng.normal(0.4, 1.0, (4, 2, 3, 3)), 1, 1, 1, 1, np.zeros(4)),
                   "lif1": _cuba((4, 10, 10)),
                   "pool": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
                   "lif2": _cuba((4, 5, 5), threshold=0.5),
                   "flat": nir.Flatten({"input": np.array([4, 5, 5])}, 0),
                   "fc": nir.Affine(rng.normal(0.2, 0.8, (10, 100)), np.zeros(10)), "lif3": _cuba(10),
                   "output": nir.Output(np.array([10]))},
                  [("input", "conv1"), ("conv1", "lif1"), ("lif1", "pool"), ("pool", "lif2"), ("lif2", "flat"),
                   ("flat", "fc"), ("fc", "lif3"), ("lif3", "output")])


def recurrent_net(seed: int = 0) -> nir.NIRGraph:
    """34 -> 40 CubaLIF with a 40x40 recurrent Affine -> 10 CubaLIF."""
    rng = np.random.default_rng(seed)
    return _graph({"input": nir.Input(np.array([34])),
                   "fc1": nir.Affine(rng.normal(0.4, 1.5, (40, 34)), np.zeros(40)), "lif1": _cuba(40),
                   "rec": nir.Affine(rng.normal(-0.1, 0.8, (40, 40)), np.zeros(40)),
                   "fc2": nir.Affine(rng.normal(0.2, 1.2, (10, 40)), np.zeros(10)), "lif2": _cuba(10),
                   "output": nir.Output(np.array([10]))},
                  [("input", "fc1"), ("fc1", "lif1"), ("lif1", "rec"), ("rec", "lif1"), ("lif1", "fc2"),
                   ("fc2", "lif2"), ("lif2", "output")])


def lif_bias_net(seed: int = 0) -> nir.NIRGraph:
    """34 -> 30 LIF (tau 5, Affine bias: a neuron bias in netx) -> 10 IF."""
    rng = np.random.default_rng(seed)
    ones = np.ones(30)
    return _graph({"input": nir.Input(np.array([34])),
                   "fc1": nir.Affine(rng.normal(0.1, 0.6, (30, 34)), rng.normal(0.05, 0.05, 30)),
                   "lif1": nir.LIF(tau=ones * 5.0, r=ones * 5.0, v_leak=ones * 0, v_threshold=ones, v_reset=ones * 0),
                   "fc2": nir.Affine(rng.normal(0.0, 0.5, (10, 30)), np.zeros(10)),
                   "if2": nir.IF(r=np.ones(10), v_threshold=np.ones(10), v_reset=np.zeros(10)),
                   "output": nir.Output(np.array([10]))},
                  [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "if2"), ("if2", "output")])


GRAPHS = {"dense_mlp": dense_mlp, "conv_net": conv_net, "pool_net": pool_net, "recurrent_net": recurrent_net,
          "lif_bias_net": lif_bias_net}


def input_spikes(shape, steps: int = 100, samples: int = 2, p: float = 0.2, seed: int = 1) -> np.ndarray:
    """Bernoulli(p) spikes (steps, samples, *shape) as float32 0/1."""
    return (np.random.default_rng(seed).random((steps, samples, *shape)) < p).astype(np.float32)
