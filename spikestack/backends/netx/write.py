"""netx layers -> a lava-dl netx HDF5 file, written with h5py (no lava-dl in this environment).

The layout is what lava-dl 0.6.0's `netx/hdf5.py` reads and what SLAYER's `export_hdf5` writes:
`layer/<i>` groups with `type` (a 1-element `S10` array), `shape` in channel-first order (netx
reverses it to its (x, y, f) order), integer `weight` (dense: (out, in); conv: (out, in / groups,
kh, kw), torch's layout, which netx flips and transposes for Lava's Conv itself), `stride`,
`padding`, `dilation` in (y, x) order, `groups`, `bias` (one mantissa per neuron, or per channel),
and a `neuron` group: `type` CUBA, `iDecay`, `vDecay`, `vThMant`, `refDelay` 1, `gradedSpike` False.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from spikestack.backends.netx.layers import NetxLayer
from spikestack.outputs import write_atomically


def _text(group: h5py.Group, name: str, value: str) -> None:
    group.create_dataset(name, (1,), "S10", [value.encode("ascii")])


def _bias(layer: NetxLayer) -> np.ndarray:
    """Per channel where every position of a channel shares it (SLAYER's form), else one per neuron
    in netx's (x, y, f) order for a conv layer."""
    bias = layer.bias
    if layer.kind != "conv":
        return bias
    per_channel = bias.reshape(bias.shape[0], -1)
    if np.all(per_channel == per_channel[:, :1]):
        return per_channel[:, 0].copy()
    return np.ascontiguousarray(bias.transpose(2, 1, 0))


def _write_layer(group: h5py.Group, layer: NetxLayer) -> None:
    _text(group, "type", layer.kind)
    group.create_dataset("shape", data=np.asarray(layer.shape, dtype=np.int64))
    if layer.weight is None:
        return
    group.create_dataset("weight", data=layer.weight)
    if layer.weight_rec is not None:
        group.create_dataset("weight_rec", data=layer.weight_rec)
    if layer.bias is not None:
        group.create_dataset("bias", data=_bias(layer))
    if layer.kind == "conv":
        for name in ("stride", "padding", "dilation"):
            group.create_dataset(name, data=np.asarray(getattr(layer, name), dtype=np.int64))
        group.create_dataset("groups", data=np.int64(layer.groups))
    neuron = group.create_group("neuron")
    _text(neuron, "type", "CUBA")
    neuron.create_dataset("iDecay", data=np.int64(layer.neuron.i_decay))
    neuron.create_dataset("vDecay", data=np.int64(layer.neuron.v_decay))
    neuron.create_dataset("vThMant", data=np.int64(layer.neuron.v_th_mant))
    neuron.create_dataset("refDelay", data=np.int64(1))
    neuron.create_dataset("gradedSpike", data=False)


def write_netx(layers: list[NetxLayer], path: str | os.PathLike, source: str = "") -> Path:
    """Write the layers to `path` atomically (a failure leaves no file and any old one intact)."""

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as file:
            file.attrs["generator"] = "spikestack"
            if source:
                file.attrs["source"] = source
            root = file.create_group("layer")
            for index, layer in enumerate(layers):
                _write_layer(root.create_group(str(index)), layer)

    return write_atomically(path, write)
