"""Residual ANNs for TTRBR conversion, stored as plain data, and `SpikingGraph`, the SNN they become.

A model file is `torch.save({"format", "arch", "state_dict"})`: the architecture is a dict of
numbers (`ResNetSpec`), the weights a state_dict, so `torch.load(path, weights_only=True)` reads it
and no pickled user code ever runs. `build_ann(arch)` rebuilds the module from the dict.

`SpikingGraph` runs a DAG of synapse modules (Conv2d, Linear, AvgPool2d, Flatten, `ScaleLayer`) and
`IFNeurons` layer by layer (every step of one node, then the next): a feed-forward graph needs no
other order, and a convolution over T*B samples at once is far faster on a CPU than T small
ones. Several sources of a node are summed, as NIR sums fan-in. It converts to and from a NIR graph
with the exporter's own module converters, so the torch model and the exported file are one network.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nir
import numpy as np
import torch
from torch import nn

from spikestack.errors import DataError, OptionsError, SpikestackError, UnsupportedError
from spikestack.frontend.export import CONVERTERS, READOUT
from spikestack.frontend.neurons import IFNeurons, Readout
from spikestack.ir.graph import build_graph
from spikestack.ir.options import METADATA_KEY, LoweringOptions, options_metadata, resolve_options
from spikestack.memory import check_allocation, format_bytes, memory_budget
from spikestack.outputs import write_atomically

# (layer name, IF layer, input current (T, B, *shape)) -> what the layer's consumers read (T, B, *shape)
HiddenLayerFn = Callable[[str, IFNeurons, torch.Tensor], torch.Tensor]

FORMAT = "spikestack-ann/1"
BLOCK_MODULE_BYTES = 32 * 2**10  # measured: one BasicBlock's eight torch modules, before any weight


@dataclass(frozen=True)
class ResNetSpec:
    """A narrow post-activation ResNet: stem conv, `blocks` basic blocks over `stages` stages (each
    later stage halves the resolution and doubles the width), global average pool, linear head."""

    in_shape: tuple[int, int, int] = (1, 28, 28)
    classes: int = 10
    width: int = 8
    blocks: int = 20
    stages: int = 2
    stem_stride: int = 2

    def __post_init__(self):
        if len(self.in_shape) != 3:
            raise OptionsError(f"ResNetSpec field 'in_shape' must be (C, H, W), got {self.in_shape}")
        for name in ("in_shape", "classes", "width", "blocks", "stages", "stem_stride"):
            value = getattr(self, name)
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in (value if name == "in_shape" else (value,))):
                raise OptionsError(f"ResNetSpec field '{name}' must hold positive integers, got {value!r}")
        if self.blocks < self.stages:
            raise OptionsError(f"need at least one block per stage, got {self.blocks} blocks for {self.stages} stages")

    def to_dict(self) -> dict:
        return {"kind": "resnet", **{k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}}

    @classmethod
    def from_dict(cls, arch: dict) -> "ResNetSpec":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(arch) - fields - {"kind"}
        if arch.get("kind") != "resnet" or unknown:
            raise DataError(f"not a resnet description: kind={arch.get('kind')!r}, unknown keys {sorted(unknown)}")
        values = {}
        for key, value in ((k, v) for k, v in arch.items() if k != "kind"):
            items = value if isinstance(value, (list, tuple)) else (value,)
            if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in items):
                raise DataError(f"resnet description field '{key}' holds non-integer values: {value!r}")
            values[key] = tuple(int(v) for v in items) if isinstance(value, (list, tuple)) else int(value)
        return cls(**values)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); a 1x1 conv shortcut where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity: deep stacks train from step one
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


def check_resnet_size(spec: ResNetSpec) -> None:
    """Refuse, before building it, a ResNet whose weights and modules would exceed the memory budget.
    Counted stage by stage, stopping once over budget: the width doubles each stage, so 10^7 stages
    would otherwise be a count with millions of digits."""
    budget = memory_budget()
    bn = lambda ch: 4 * ch + 1  # noqa: E731  (weight, bias, running mean and variance, batch count)
    weights, channels, at_least = spec.in_shape[0] * spec.width * 9 + bn(spec.width), spec.width, ""
    for stage in range(spec.stages):
        count = spec.blocks // spec.stages + (stage < spec.blocks % spec.stages)
        out = spec.width * 2 ** stage
        shortcut = channels * out + bn(out) if stage > 0 or channels != out else 0
        weights += channels * out * 9 + out * out * 9 + 2 * bn(out) + shortcut + (count - 1) * (18 * out * out + 2 * bn(out))
        channels = out
        if weights * 4 > budget:
            at_least = "at least "
            break
    weights += channels * spec.classes + spec.classes
    check_allocation(f"a ResNet of width {spec.width}, {spec.blocks:,} blocks over {spec.stages:,} stages and "
                     f"{spec.classes:,} classes: {at_least}{weights:,} weights x 4 bytes + {spec.blocks:,} blocks x "
                     f"{format_bytes(BLOCK_MODULE_BYTES)} of torch modules", weights * 4 + spec.blocks * BLOCK_MODULE_BYTES)


def build_resnet(spec: ResNetSpec) -> nn.Sequential:
    check_resnet_size(spec)
    c, h, w = spec.in_shape
    layers: list[nn.Module] = [nn.Conv2d(c, spec.width, 3, spec.stem_stride, 1, bias=False), nn.BatchNorm2d(spec.width), nn.ReLU()]
    h, w = (h - 1) // spec.stem_stride + 1, (w - 1) // spec.stem_stride + 1
    channels = spec.width
    per_stage = [spec.blocks // spec.stages + (s < spec.blocks % spec.stages) for s in range(spec.stages)]
    for stage, count in enumerate(per_stage):
        out = spec.width * 2 ** stage
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(BasicBlock(channels, out, stride))
            channels, h, w = out, (h - 1) // stride + 1, (w - 1) // stride + 1
    layers += [nn.AvgPool2d((h, w)), nn.Flatten(), nn.Linear(channels, spec.classes)]
    return nn.Sequential(*layers)


def build_ann(arch: dict) -> nn.Module:
    """The module an architecture description names (only "resnet" so far)."""
    if not isinstance(arch, dict) or arch.get("kind") != "resnet":
        raise DataError(f"unknown architecture description {arch!r}: expected a dict with kind 'resnet'")
    return build_resnet(ResNetSpec.from_dict(arch))


def save_ann(model: nn.Module, arch: dict, path: str | os.PathLike) -> Path:
    """Write weights + architecture as tensors and plain values (readable with weights_only=True)."""
    blob = {"format": FORMAT, "arch": arch, "state_dict": model.state_dict()}
    return write_atomically(path, lambda tmp: torch.save(blob, tmp))


def load_ann(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild a model written by `save_ann`; never unpickles code (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such model file")
    try:
        # mmap: the tensors stay in the file until load_state_dict copies them into a checked model
        blob = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a bad file
        if "GLOBAL" in str(exc):  # the weights-only unpickler met a class or function: it would run code
            raise DataError(f"{path}: refused by the weights-only loader, it holds Python objects beyond "
                            "tensors and plain containers (write models with save_ann)") from None
        raise DataError(f"{path}: not a readable weights-only torch file (damaged, truncated or not "
                        f"written by torch.save: {type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise DataError(f"{path}: not a spikestack model file (expected format {FORMAT!r})")
    try:  # the stored architecture is checked, against the memory budget too, before anything is built
        model = build_ann(blob.get("arch"))
    except SpikestackError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise DataError(f"{path}: weights do not fit the described architecture ({str(exc).splitlines()[0][:120]})") from None
    return model.eval(), blob["arch"]


class ScaleLayer(nn.Module):
    """x * scale elementwise (NIR Scale): what a spike from a neuron of threshold theta is worth."""

    def __init__(self, scale: float, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("scale", torch.full(self.shape, float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _module_from_nir(node: nir.NIRNode, shape, options: LoweringOptions, name: str) -> nn.Module:
    """The torch module of one NIR node written by `SpikingGraph.to_nir_graph` (or restructure_graph)."""
    kind = type(node).__name__
    as_tensor = lambda a: torch.as_tensor(np.asarray(a, np.float32))  # noqa: E731
    if kind in ("Affine", "Linear"):
        out_f, in_f = np.shape(node.weight)
        m = nn.Linear(in_f, out_f, bias=kind == "Affine")
        m.weight.data = as_tensor(node.weight)
        if kind == "Affine":
            m.bias.data = as_tensor(node.bias)
        return m
    if kind == "Conv2d":
        c_out, c_in_g, kh, kw = np.shape(node.weight)
        pair = lambda v: tuple(int(x) for x in np.broadcast_to(np.asarray(v), (2,)))  # noqa: E731
        m = nn.Conv2d(c_in_g * int(node.groups), c_out, (kh, kw), pair(node.stride), pair(node.padding),
                      pair(node.dilation), int(node.groups))
        m.weight.data, m.bias.data = as_tensor(node.weight), as_tensor(node.bias)
        return m
    if kind == "Scale":
        m = ScaleLayer(1.0, shape)
        m.scale.data = as_tensor(node.scale).broadcast_to(shape).clone()
        return m
    if kind == "AvgPool2d":
        ints = lambda v: tuple(int(x) for x in v)  # noqa: E731
        return nn.AvgPool2d(ints(node.kernel_size), ints(node.stride), ints(node.padding))
    if kind == "Flatten":  # NIR dims exclude the batch: shift non-negative ones up
        return nn.Flatten(*(int(d) + 1 if int(d) >= 0 else int(d) for d in (node.start_dim, node.end_dim)))
    if kind == "IF":
        return IFNeurons(shape, v_threshold=node.v_threshold, r=node.r, v_reset=node.v_reset, reset=options.reset,
                         reset_timing=options.reset_timing, initial_potential=options.initial_potential, dt=options.dt)
    raise UnsupportedError(f"{kind} has no SpikingGraph module", node=name)


def _nir_node(module: nn.Module, in_shape) -> nir.NIRNode:
    if isinstance(module, ScaleLayer):
        return nir.Scale(scale=module.scale.detach().cpu().numpy().astype(np.float32))
    converter = CONVERTERS.get(type(module))
    if converter is None:
        raise UnsupportedError(f"module {type(module).__name__} has no NIR export")
    return converter(module, in_shape)


class SpikingGraph(nn.Module):
    """A feed-forward DAG of synapse modules and IF layers; `sources[name]` are summed into `name`."""

    def __init__(self, input_shape, layers: dict[str, nn.Module], sources: dict[str, tuple[str, ...]], output: str):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.layers = nn.ModuleDict(layers)  # insertion order is a topological order
        self.sources = {k: tuple(v) for k, v in sources.items()}
        self.output = output
        if not isinstance(self.layers[output], IFNeurons):
            raise OptionsError(f"the output node '{output}' must be an IF layer (its spikes are the readout)")

    def run(self, x_seq: torch.Tensor, hidden: HiddenLayerFn | None = None) -> Readout:
        """Run input (T, B, *input_shape); the readout is the output layer's spikes (as `predict` wants).

        hidden(name, layer, current) -> output, if given, replaces every hidden IF layer's spikes
        (e.g. by a rate view, or spikes worth a learned value: `ttrbr_tuning`); Readout.spikes then
        sums those outputs."""
        steps = x_seq.shape[0]
        last_use = {src: name for name, srcs in self.sources.items() for src in srcs}
        values: dict[str, torch.Tensor] = {"input": x_seq}
        spikes = 0
        for name, module in self.layers.items():
            x = sum(values[src] for src in self.sources[name])
            if name == self.output:
                out, state = [], None
                for x_t in x:  # stepped here: the readout needs the final membrane
                    s, state = module.step(x_t, state)
                    out.append(s)
                y = torch.stack(out)
                return Readout(y.sum(0), state.v, x.mean(0), spikes + y.flatten(2).sum((0, 2)))
            if isinstance(module, IFNeurons):
                y = module(x) if hidden is None else hidden(name, module, x)
                spikes = spikes + y.flatten(2).sum((0, 2))
            else:
                y = module(x.flatten(0, 1))
                y = y.reshape(steps, -1, *y.shape[1:])
            values[name] = y
            for src in set(self.sources[name]):  # free what no later node reads
                if last_use.get(src) == name:
                    del values[src]
        raise OptionsError(f"output node '{self.output}' was never reached")

    def threshold(self, name: str) -> float:
        """The threshold of IF layer `name` (one value for the whole layer, as this module sets it)."""
        return float(self.layers[name].nir_params["v_threshold"].flat[0])

    def set_threshold(self, name: str, theta: float) -> IFNeurons:
        """Give IF layer `name` the threshold theta and rescale what reads its spikes by theta_new/theta_old.

        A spike stands for the value theta, folded into the synapses it meets: the weights (or Scale)
        of each consumer, reached through value-preserving pools and flattens.
        """
        old = self.layers[name]
        new = IFNeurons(old.shape, v_threshold=theta, r=old.nir_params["r"], v_reset=old.nir_params["v_reset"],
                        reset=old.options.reset, reset_timing=old.options.reset_timing,
                        initial_potential=old.options.initial_potential, dt=old.options.dt)
        factor = theta / self.threshold(name)
        stack = [c for c, srcs in self.sources.items() if name in srcs]
        while stack:
            consumer = stack.pop()
            module = self.layers[consumer]
            if len(self.sources[consumer]) != 1:
                raise OptionsError(f"cannot set the threshold of '{name}': '{consumer}' sums it with other inputs")
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                module.weight.data.mul_(factor)
            elif isinstance(module, ScaleLayer):
                module.scale.mul_(factor)
            elif isinstance(module, (nn.AvgPool2d, nn.Flatten)):  # linear and weightless: pass it on
                stack += [c for c, srcs in self.sources.items() if consumer in srcs]
            else:
                raise OptionsError(f"cannot set the threshold of '{name}': '{consumer}' reads its spikes unweighted")
        self.layers[name] = new
        return new

    def options(self) -> LoweringOptions:
        found = {m.options for m in self.layers.values() if isinstance(m, IFNeurons)}
        if len(found) != 1:
            raise OptionsError(f"IF layers disagree on dt/reset/initial potential: {sorted(map(str, found))}")
        return found.pop()

    def to_nir_graph(self, method: str, metadata: dict | None = None) -> nir.NIRGraph:
        """The NIR graph of this network (NIR sums fan-in, so a residual sum is two edges into a node)."""
        shapes = {"input": self.input_shape}
        nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(self.input_shape)})}
        edges = []
        with torch.no_grad():
            for name, module in self.layers.items():
                in_shape = shapes[self.sources[name][0]]
                nodes[name] = _nir_node(module, in_shape)
                shapes[name] = in_shape if isinstance(module, IFNeurons) else tuple(module(torch.zeros(1, *in_shape)).shape[1:])
                edges += [(src, name) for src in self.sources[name]]
        nodes["output"] = nir.Output(output_type={"output": np.array(shapes[self.output])})
        edges.append((self.output, "output"))
        meta = options_metadata(self.options())
        meta[METADATA_KEY].update(method=method, readout=READOUT, **(metadata or {}))
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)

    @classmethod
    def from_nir(cls, graph: nir.NIRGraph) -> "SpikingGraph":
        """Rebuild from a flat graph this class (or `ir.restructure.restructure_graph`) wrote."""
        flat = build_graph(graph)
        options = resolve_options(flat.metadata)
        (input_name,), (output_name,) = flat.inputs, flat.outputs
        rename = {input_name: "input"}
        layers, sources = {}, {}
        for name in flat.order:
            if name in (input_name, output_name):
                continue
            key = name.replace(".", "_")  # ModuleDict keys cannot hold dots
            rename[name] = key
            layers[key] = _module_from_nir(flat.nodes[name], flat.in_shapes[name], options, name)
            sources[key] = tuple(rename[s] for s in flat.fan_in[name])
        return cls(flat.in_shapes[input_name], layers, sources, rename[flat.fan_in[output_name][0]])
