"""A lava-dl netx HDF5 file -> a `nir.NIRGraph` whose loihi mode runs the file's own integers.

Each layer becomes a synapse (Affine, or Conv2d) into a CubaLIF that holds the layer's integers as
floats at integer scale 1, with dt = 1 and the `netx` preset (ir/presets.py), which reads a
CubaLIF as Lava's CUBA neuron steps: u <- (1 - iDecay/4096) u + w x (w_in = 1, "impulse"),
v <- (1 - vDecay/4096) v + u + bias (r = 1, unscaled), so tau_syn = 4096/iDecay, tau_mem =
4096/vDecay and v_leak = bias * tau_mem. A layer that does not leak (vDecay 0) gets tau_mem = 2^24:
its v keeps every integer in loihi mode (the decay rounds to 0) and leaks 6e-8 per step in float
mode. The graph's metadata carries those options and `fixed_point="netx"`, `integer_scale=1`, so
`quantise_program` gives back the file's integers and loihi mode equals lava-dl's run.

Refused, naming the layer: neurons other than CUBA (Sigma-Delta, resonate-and-fire), graded
spikes, synaptic delays, complex weights, iDecay 0 (a current that never decays: Lava's du = -1,
which our registers do not hold), and the layer types netx itself cannot build.
"""

from __future__ import annotations

import os

import nir
import numpy as np

from spikestack.errors import GraphFileError, UnsupportedError
from spikestack.ir.fixed import DECAY_UNITY, VTH_MAX
from spikestack.ir.io import read_hdf5_tree
from spikestack.ir.options import LoweringOptions, options_metadata

NO_LEAK_TAU = float(2**24)  # dt / tau rounds to a decay of 0 in 12 bits
NETX_OPTIONS = LoweringOptions(dt=1.0, preset="netx", fixed_point="netx", integer_scale=1.0)


def _text(value) -> str:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("ascii", errors="replace")
    return str(value).strip()


def _ints(layer: dict, key: str, where: str, ndim: tuple[int, ...] | None = None) -> np.ndarray:
    if key not in layer:
        raise GraphFileError(f"{where}: no '{key}'")
    value = np.asarray(layer[key])
    if value.dtype.kind not in "iuf" or not np.all(np.isfinite(value)) or np.any(value != np.rint(value)):
        raise GraphFileError(f"{where}: '{key}' must hold integers")
    if ndim is not None and value.ndim not in ndim:
        raise GraphFileError(f"{where}: '{key}' has {value.ndim} dimensions, expected {' or '.join(map(str, ndim))}")
    return value.astype(np.int64)


def _pair(layer: dict, key: str, where: str, default: int) -> tuple[int, int]:
    if key not in layer:
        return default, default
    value = _ints(layer, key, where, (0, 1)).reshape(-1)
    if value.size == 1:
        return int(value[0]), int(value[0])
    if value.size != 2:
        raise GraphFileError(f"{where}: '{key}' must hold 1 or 2 values")
    return int(value[0]), int(value[1])


def _neuron(layer: dict, shape: tuple[int, ...], where: str) -> nir.CubaLIF:
    config = layer.get("neuron")
    if not isinstance(config, dict):
        raise UnsupportedError(f"{where}: no CUBA neuron group (netx's default integrator is not imported)")
    kind = _text(config.get("type", ""))
    if kind not in ("CUBA", "LOIHI"):
        raise UnsupportedError(f"{where}: neuron type '{kind[:20]}' is not imported (only CUBA)")
    if "messageBits" in config and int(np.asarray(config["messageBits"]).reshape(-1)[0]) != 0 or \
            bool(np.asarray(config.get("gradedSpike", False)).reshape(-1)[0]):
        raise UnsupportedError(f"{where}: graded spikes are not imported")
    i_decay, v_decay, vth = (int(_ints(config, k, f"{where}/neuron", (0, 1)).reshape(-1)[0])
                             for k in ("iDecay", "vDecay", "vThMant"))
    if not (1 <= i_decay <= DECAY_UNITY):
        raise UnsupportedError(f"{where}: iDecay {i_decay} is not imported (1..{DECAY_UNITY}; 0 would be a "
                               "current that never decays)")
    if not (0 <= v_decay <= DECAY_UNITY - 1) or not (0 <= vth <= VTH_MAX):
        raise GraphFileError(f"{where}: vDecay {v_decay} or vThMant {vth} outside Loihi's range")
    bias = None
    if "bias" in layer:
        bias = _ints(layer, "bias", where).astype(np.float64)
        if bias.shape != shape and bias.shape == shape[::-1] and len(shape) == 3:
            bias = bias.transpose(2, 1, 0)  # netx's (x, y, f) order
        elif len(shape) == 3 and bias.shape == (shape[0],):
            bias = np.broadcast_to(bias[:, None, None], shape)
        elif bias.shape != shape and bias.size == 1:
            bias = np.broadcast_to(bias.reshape(()), shape)
        if bias.shape != shape:
            raise GraphFileError(f"{where}: bias of shape {bias.shape} does not fit the layer's {shape}")
    ones = np.ones(shape)
    tau_mem = DECAY_UNITY / v_decay if v_decay else NO_LEAK_TAU
    v_leak = np.zeros(shape) if bias is None else bias * tau_mem
    node = nir.CubaLIF(tau_syn=ones * (DECAY_UNITY / i_decay), tau_mem=ones * tau_mem, r=ones, v_leak=v_leak,
                       v_threshold=ones * float(vth), v_reset=np.zeros(shape), w_in=ones)
    return node


def read_netx(path: str | os.PathLike, input_shape: tuple[int, ...] | None = None) -> nir.NIRGraph:
    """The netx file at `path` as a NIR graph (see the module docstring); GraphFileError or
    UnsupportedError naming the layer otherwise. The file is only read. `input_shape` ((C, H, W) or
    (n,)): for a file without an input layer whose first layer is a conv, as netx's own
    `Network(input_shape=...)` needs it (SLAYER writes no input layer)."""
    tree = read_hdf5_tree(path, "layer", "a netx network")
    try:
        order = sorted(tree, key=int)
    except ValueError:
        raise GraphFileError(f"{path}: netx layers are named 0, 1, 2, ...; found {sorted(tree)[:5]}") from None
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    last, shape, flatten = None, None, False
    if input_shape is not None:
        shape = tuple(int(v) for v in input_shape)
        if not shape or min(shape) < 1 or len(shape) not in (1, 3):
            raise UnsupportedError(f"input shape {shape}: netx inputs are (n,) or (C, H, W)")
        if "input" in (_text(tree[k].get("type", "")) for k in order if isinstance(tree[k], dict)):
            raise UnsupportedError(f"{path}: has an input layer; its shape is the input shape")
        nodes["input"], last = nir.Input(input_type=np.array(shape)), "input"
    for index in order:
        layer, where = tree[index], f"{path}: layer {index}"
        if not isinstance(layer, dict):
            raise GraphFileError(f"{where}: not a group")
        kind = _text(layer.get("type", ""))
        if kind == "input":
            if last is not None:
                raise UnsupportedError(f"{where}: an input layer after the first layer")
            if "neuron" in layer:
                raise UnsupportedError(f"{where}: an input layer with neurons (input through biases) is not imported")
            shape = tuple(int(v) for v in _ints(layer, "shape", where, (1,)))
            nodes["input"] = nir.Input(input_type=np.array(shape))
            last = "input"
        elif kind == "flatten":
            flatten = True
        elif kind in ("dense", "dense_rec", "conv"):
            if "delay" in layer:
                raise UnsupportedError(f"{where}: synaptic delays are not imported")
            if "weight" not in layer or isinstance(layer["weight"], dict):
                raise UnsupportedError(f"{where}: complex or missing weights are not imported")
            last, shape = _weighted(layer, kind, int(index), where, nodes, edges, last, shape, flatten)
            flatten = False
        else:
            raise UnsupportedError(f"{where}: layer type '{kind[:20]}' is not imported (netx cannot run it either)")
    if last is None or last == "input":
        raise GraphFileError(f"{path}: no dense or conv layer")
    nodes["output"] = nir.Output(output_type=np.array(shape))
    edges.append((last, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={**options_metadata(NETX_OPTIONS), "source": str(path)},
                        type_check=False)


def _weighted(layer: dict, kind: str, index: int, where: str, nodes: dict, edges: list, last: str | None,
              shape: tuple[int, ...] | None, flatten: bool) -> tuple[str, tuple[int, ...]]:
    """Add layer `index` (synapse, CubaLIF, and for dense_rec its recurrent Affine); return its name and shape."""
    weight = _ints(layer, "weight", where, (2,) if kind != "conv" else (4, 5)).astype(np.float64)
    if weight.size and (weight.min() < -256 or weight.max() > 255):  # netx would clip them (optimize_weight_bits)
        raise UnsupportedError(f"{where}: weights {weight.min():.0f}..{weight.max():.0f} outside netx's 8-bit range")
    if last is None:  # no input layer: the first layer's weights say the input's shape
        if kind == "conv":
            raise UnsupportedError(f"{where}: a conv network without an input layer: give its input shape "
                                   "(--input-shape C H W), as netx's Network(input_shape=...) needs")
        shape = (weight.shape[1],)
        nodes["input"], last = nir.Input(input_type=np.array(shape)), "input"
    if flatten or (kind != "conv" and len(shape) > 1):
        nodes[f"layer{index}_flatten"] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0)
        edges.append((last, f"layer{index}_flatten"))
        last, shape = f"layer{index}_flatten", (int(np.prod(shape)),)
    synapse, neuron = f"layer{index}_synapse", f"layer{index}_neuron"
    if kind == "conv":
        weight = weight.reshape(weight.shape[:4])
        if len(shape) != 3 or weight.shape[1] * max(1, int(_pair(layer, "groups", where, 1)[0])) != shape[0]:
            raise GraphFileError(f"{where}: conv weights {weight.shape} do not fit the input {shape}")
        groups = _pair(layer, "groups", where, 1)[0]
        node = nir.Conv2d(input_shape=shape[1:], weight=weight, stride=_pair(layer, "stride", where, 1),
                          padding=_pair(layer, "padding", where, 0), dilation=_pair(layer, "dilation", where, 1),
                          groups=groups, bias=np.zeros(weight.shape[0]))
        out = tuple(int(v) for v in _ints(layer, "shape", where, (1,)))
    else:
        if weight.shape[1] != shape[0]:
            raise GraphFileError(f"{where}: weights {weight.shape} do not fit the input of {shape[0]}")
        node, out = nir.Affine(weight=weight, bias=np.zeros(weight.shape[0])), (weight.shape[0],)
    nodes[synapse], nodes[neuron] = node, _neuron(layer, out, where)
    edges += [(last, synapse), (synapse, neuron)]
    if kind == "dense_rec":
        rec = _ints(layer, "weight_rec", where, (2,)).astype(np.float64)
        if rec.shape != (out[0], out[0]):
            raise GraphFileError(f"{where}: weight_rec {rec.shape} is not ({out[0]}, {out[0]})")
        nodes[f"layer{index}_recurrent"] = nir.Affine(weight=rec, bias=np.zeros(out[0]))
        edges += [(neuron, f"layer{index}_recurrent"), (f"layer{index}_recurrent", neuron)]
    return neuron, out
