"""Our own NIR exporter: a `SpikingSequential` (or any sequence of supported modules) to a `.nir` file.

Written here rather than through `norse.torch.to_nir` or nirtorch, whose time constants, biases and
Flatten dims come out wrong under nir 1.0.8 (BRIEF §2). The graph is a chain
Input -> Affine/Linear/Conv2d/Flatten/SumPool2d/AvgPool2d/IF/LIF ... -> Output with NIR field names;
neuron parameters are per-neuron arrays (never scalars, NIR issue 176) in the units the layers use
(tau in the unit of dt). Everything NIR cannot say (dt, reset mode and timing, initial potential)
goes into graph metadata via `spikestack.ir.options.options_metadata`, with the training method and
the readout, so `resolve_options(graph.metadata)` needs no options at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import nir
import numpy as np
import torch
from torch import nn

from spikestack.errors import OptionsError, UnsupportedError
from spikestack.frontend.neurons import NEURON_MODULES
from spikestack.ir.io import write_nir
from spikestack.ir.options import METADATA_KEY, LoweringOptions, options_metadata

READOUT = "output spike count over T; ties broken by final output membrane, then lowest index"


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _linear(m: nn.Linear, in_shape) -> nir.NIRNode:
    if m.bias is None:
        return nir.Linear(weight=_array(m.weight))
    return nir.Affine(weight=_array(m.weight), bias=_array(m.bias))


def _conv2d(m: nn.Conv2d, in_shape) -> nir.NIRNode:
    if m.padding_mode != "zeros":
        raise UnsupportedError(f"Conv2d padding_mode '{m.padding_mode}' has no NIR equivalent (only zeros)")
    bias = _array(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
    return nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=_array(m.weight), stride=tuple(m.stride),
                      padding=m.padding if isinstance(m.padding, str) else tuple(m.padding),
                      dilation=tuple(m.dilation), groups=m.groups, bias=bias)


def _flatten(m: nn.Flatten, in_shape) -> nir.NIRNode:
    # torch counts the batch dimension, NIR does not: shift non-negative dims down by one.
    if m.start_dim == 0:
        raise UnsupportedError("Flatten(start_dim=0) flattens the batch dimension; NIR shapes have none")
    shift = lambda d: d - 1 if d >= 0 else d  # noqa: E731
    return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=shift(m.start_dim), end_dim=shift(m.end_dim))


def _pool_args(m) -> dict:
    pair = lambda v: np.array(v if isinstance(v, (tuple, list)) else (v, v))  # noqa: E731
    if getattr(m, "ceil_mode", False):
        raise UnsupportedError(f"{type(m).__name__}(ceil_mode=True) has no NIR equivalent")
    stride = m.stride if m.stride is not None else m.kernel_size
    return dict(kernel_size=pair(m.kernel_size), stride=pair(stride), padding=pair(getattr(m, "padding", 0)))


def _lppool2d(m: nn.LPPool2d, in_shape) -> nir.NIRNode:
    if float(m.norm_type) != 1.0:  # LPPool2d with p = 1 is exactly sum pooling
        raise UnsupportedError(f"LPPool2d(norm_type={m.norm_type}) is not sum pooling; only norm_type=1 exports")
    return nir.SumPool2d(**_pool_args(m))


def _avgpool2d(m: nn.AvgPool2d, in_shape) -> nir.NIRNode:
    return nir.AvgPool2d(**_pool_args(m))


# Module type -> converter(module, input shape without batch) -> NIR node. None: no node (identity).
CONVERTERS: dict[type, Callable | None] = {
    nn.Linear: _linear, nn.Conv2d: _conv2d, nn.Flatten: _flatten, nn.LPPool2d: _lppool2d,
    nn.AvgPool2d: _avgpool2d, nn.Identity: None, nn.Dropout: None,
    **{cls: (lambda m, in_shape: m.to_nir()) for cls in NEURON_MODULES},
}


def _leaves(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        return [leaf for child in model for leaf in _leaves(child)]
    return [model]


def model_options(model: nn.Module) -> LoweringOptions:
    """The lowering options every neuron layer of `model` was built with (they must all agree)."""
    found = {m.options for m in _leaves(model) if isinstance(m, NEURON_MODULES)}
    if not found:
        raise OptionsError("model has no IF or LIF neuron layer")
    if len(found) > 1:
        raise OptionsError(f"neuron layers disagree on dt/reset/initial potential: {sorted(map(str, found))}")
    return found.pop()


def to_nir_graph(model: nn.Module, method: str, input_shape: Sequence[int]) -> nir.NIRGraph:
    """Build the `nir.NIRGraph` of a chain of supported modules (see CONVERTERS), with the lowering
    options its neuron layers were built with (`model_options`) in its metadata."""
    if not isinstance(method, str) or not method:
        raise OptionsError(f"method must be a non-empty string naming the training method, got {method!r}")
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if not shape or min(shape) < 1:
        raise OptionsError(f"input_shape must be positive sizes without the batch dimension, got {tuple(input_shape)}")
    options = model_options(model)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    order = ["input"]
    param = next(model.parameters(), None)
    x = torch.zeros((1, *shape), **(dict(device=param.device, dtype=param.dtype) if param is not None else {}))
    with torch.no_grad():
        for module in _leaves(model):
            kind = type(module)
            if kind not in CONVERTERS:
                supported = ", ".join(c.__name__ for c in CONVERTERS)
                raise UnsupportedError(f"module {kind.__name__} has no NIR export; supported: {supported}")
            if CONVERTERS[kind] is None:
                continue
            if isinstance(module, NEURON_MODULES):
                if module.shape != tuple(x.shape[1:]):
                    got = tuple(x.shape[1:])
                    raise OptionsError(f"{kind.__name__} of shape {module.shape} receives input of shape {got}")
            node = CONVERTERS[kind](module, tuple(x.shape[1:]))
            try:  # shapes come from running each module once on a zero sample
                x = x if isinstance(module, NEURON_MODULES) else module(x)
            except RuntimeError as exc:
                raise OptionsError(f"{kind.__name__} cannot take input of shape {tuple(x.shape[1:])} "
                                   f"({str(exc).splitlines()[0]})") from None
            name = f"{type(node).__name__.lower()}{len(order) - 1}"
            nodes[name] = node
            order.append(name)
    nodes["output"] = nir.Output(output_type={"output": np.array(x.shape[1:])})
    order.append("output")
    metadata = options_metadata(options)
    metadata[METADATA_KEY].update(method=method, readout=READOUT)
    # type_check=False: NIR's own inference rejects valid chains; ir.graph infers shapes instead.
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), metadata=metadata, type_check=False)


def export_nir(model: nn.Module, path: str | os.PathLike, method: str, input_shape: Sequence[int]) -> Path:
    """Write `model` as a NIR graph that `spikestack.ir.validate.load_graph` reads with no options."""
    return write_nir(to_nir_graph(model, method, input_shape), path)
