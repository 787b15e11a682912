"""`SpikingGraph`, the SNN a residual ANN (ttrbr_ann.py) becomes, and `ScaleLayer`.

`SpikingGraph` runs a DAG of synapse modules (Conv2d, Linear, AvgPool2d, Flatten, `ScaleLayer`) and
`IFNeurons` layer by layer (every step of one node, then the next): a feed-forward graph needs no
other order, and a convolution over T*B samples at once is far faster on a CPU than T small
ones. Several sources of a node are summed, as NIR sums fan-in. It converts to and from a NIR graph
with the exporter's own module converters, so the torch model and the exported file are one network.
"""

from __future__ import annotations

from typing import Callable

import nir
import numpy as np
import torch
from torch import nn

from spikestack.errors import OptionsError, UnsupportedError
from spikestack.frontend.export import CONVERTERS, READOUT
from spikestack.frontend.neurons import IFNeurons, Readout
from spikestack.ir.graph import build_graph
from spikestack.ir.options import METADATA_KEY, LoweringOptions, options_metadata, resolve_options
from spikestack.ir.primitives import kind_of
from spikestack.ir.shapes import integers

# (layer name, IF layer, input current (T, B, *shape)) -> what the layer's consumers read (T, B, *shape)
HiddenLayerFn = Callable[[str, IFNeurons, torch.Tensor], torch.Tensor]


class ScaleLayer(nn.Module):
    """x * scale elementwise (NIR Scale): what a spike from a neuron of threshold theta is worth."""

    def __init__(self, scale: float, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("scale", torch.full(self.shape, float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _as_tensor(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, np.float32))


def _dense(node: nir.NIRNode, shape, options: LoweringOptions) -> nn.Linear:
    """nn.Linear from an Affine (with its bias) or a Linear (without)."""
    out_f, in_f = np.shape(node.weight)
    biased = isinstance(node, nir.Affine)
    m = nn.Linear(in_f, out_f, bias=biased)
    m.weight.data = _as_tensor(node.weight)
    if biased:
        m.bias.data = _as_tensor(node.bias)
    return m


def _conv2d(node: nir.Conv2d, shape, options: LoweringOptions) -> nn.Conv2d:
    c_out, c_in_g, kh, kw = np.shape(node.weight)
    m = nn.Conv2d(c_in_g * int(node.groups), c_out, (kh, kw), integers(node.stride, "stride", 2, 1),
                  integers(node.padding, "padding", 2, 0), integers(node.dilation, "dilation", 2, 1), int(node.groups))
    m.weight.data, m.bias.data = _as_tensor(node.weight), _as_tensor(node.bias)
    return m


def _scale(node: nir.Scale, shape, options: LoweringOptions) -> ScaleLayer:
    m = ScaleLayer(1.0, shape)
    m.scale.data = _as_tensor(node.scale).broadcast_to(shape).clone()
    return m


def _avg_pool(node: nir.AvgPool2d, shape, options: LoweringOptions) -> nn.AvgPool2d:
    return nn.AvgPool2d(integers(node.kernel_size, "kernel_size", 2, 1), integers(node.stride, "stride", 2, 1),
                        integers(node.padding, "padding", 2, 0))


def _flatten(node: nir.Flatten, shape, options: LoweringOptions) -> nn.Flatten:
    """NIR dims exclude the batch: shift non-negative ones up."""
    return nn.Flatten(*(int(d) + 1 if int(d) >= 0 else int(d) for d in (node.start_dim, node.end_dim)))


def _if_neurons(node: nir.IF, shape, options: LoweringOptions) -> IFNeurons:
    return IFNeurons(shape, v_threshold=node.v_threshold, r=node.r, v_reset=node.v_reset, reset=options.reset,
                     reset_timing=options.reset_timing, initial_potential=options.initial_potential, dt=options.dt)


# The torch module of each NIR type a SpikingGraph holds, by class: (node, its input shape, options) -> module.
MODULES: dict[type, Callable[[nir.NIRNode, tuple, LoweringOptions], nn.Module]] = {
    nir.Affine: _dense, nir.Linear: _dense, nir.Conv2d: _conv2d, nir.Scale: _scale, nir.AvgPool2d: _avg_pool,
    nir.Flatten: _flatten, nir.IF: _if_neurons}


def _module_from_nir(node: nir.NIRNode, shape, options: LoweringOptions, name: str) -> nn.Module:
    """The torch module of one NIR node written by `SpikingGraph.to_nir_graph` (or restructure_graph)."""
    build = MODULES.get(type(node))
    if build is None:
        raise UnsupportedError(f"{kind_of(node)} has no SpikingGraph module", node=name)
    return build(node, shape, options)


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
