"""TTRBR: ANN-to-SNN conversion with threshold tuning and residual block restructuring
(Meng et al., Neural Networks 2022; BRIEF §6.2). The error analysis: docs/hnsg_ttrbr.md. A trained ReLU
ANN (any module torch.fx can trace from Conv2d, Linear, BatchNorm, ReLU, AvgPool2d, Flatten and
additions) becomes an IF network in three steps:
1. `ann_to_snn`: batch norm folded into the conv/linear before it, every ReLU an IF layer (reset by
   subtraction, initial potential theta/2, which makes the count round rather than floor the rate),
   the logits an IF output layer, the image a constant input current. Where a spike train meets a
   sum (an identity shortcut) a Scale node carries the value of its spikes.
2. `restructure=True`: the graph pass `spikestack.ir.restructure.restructure_graph`.
3. `tune_thresholds` on calibration data. A spike of a layer with threshold theta stands for theta,
   so setting theta rescales the synapses its spikes meet (`SpikingGraph.set_threshold`). Targets are
   the ANN's activations of every IF layer (the graph run as a rate network, any structure):
   - "max": the largest activation (no clipping, the coarsest quantisation),
   - "percentile": the `percentile`-th percentile of the positive activations (clips outliers),
   - "search": greedy in graph order, the threshold on a grid of fractions of the max whose SNN rate
     x theta at `steps` steps, with every upstream layer already converted, is closest (MSE) to the
     ANN activation: quantisation, clipping and deviation error at the deployed step count.
   The output layer's threshold is steps x its largest logit: it integrates without spiking over
   the deployed steps, so the readout (`predict`: spike count, ties by membrane) ranks the summed
   logits rather than a count that a single early spike would decide.
4. optionally (`tuning=TaskTuning(...)`, our addition): `ttrbr_tuning.tune_on_task` learns the
   thresholds and biases on labelled images through the SNN itself, weights frozen.
"""

from __future__ import annotations

import copy
import operator
import os
from dataclasses import dataclass
from pathlib import Path

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.experimental.optimization import fuse

from spikestack.errors import DataError, OptionsError, UnsupportedError
from spikestack.frontend.data import Dataset, load_dataset
from spikestack.frontend.methods.ttrbr_ann import ResNetSpec, build_resnet, load_ann, save_ann
from spikestack.frontend.methods.ttrbr_models import ScaleLayer, SpikingGraph
from spikestack.frontend.methods.ttrbr_tuning import TaskTuning, tune_on_task
from spikestack.frontend.neurons import IFNeurons, check_steps, constant_input, predict
from spikestack.frontend.train import History, fit, seed_everything
from spikestack.ir.io import write_nir
from spikestack.ir.restructure import restructure_graph

METHOD = "ttrbr"
THRESHOLDS = ("max", "percentile", "search")
SEARCH_FRACTIONS = np.linspace(0.3, 1.0, 15)  # candidate thresholds, as fractions of the layer's max
_MODULE_KINDS = (("relu", nn.ReLU), ("weighted", (nn.Conv2d, nn.Linear)), ("linear", (nn.AvgPool2d, nn.Flatten)),
                 ("identity", (nn.Identity, nn.Dropout)))


@dataclass
class Conversion:
    """The converted SNN (torch), its NIR graph, and the threshold chosen for each IF layer."""

    snn: SpikingGraph
    graph: nir.NIRGraph
    thresholds: dict[str, float]
    steps: int
    threshold: str
    restructured: bool

    def export(self, path: str | os.PathLike) -> Path:
        return write_nir(self.graph, path)


def trace_ann(model: nn.Module) -> fx.GraphModule:
    """Trace with torch.fx and fold every BatchNorm into the conv/linear before it (eval statistics)."""
    try:
        traced = fuse(copy.deepcopy(model).eval())
    except Exception as exc:  # fx raises many kinds on untraceable control flow
        raise UnsupportedError(f"cannot trace the model with torch.fx ({str(exc).splitlines()[0][:120]})") from None
    for name, module in traced.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise UnsupportedError(f"BatchNorm '{name}' does not directly follow a conv/linear used only there; cannot fold it")
    return traced


def _kind(node: fx.Node, modules: dict) -> str:
    if node.op in ("placeholder", "output"):
        return node.op
    if node.op == "call_module":
        module = modules[node.target]
        kind = next((k for k, types in _MODULE_KINDS if isinstance(module, types)), None)
        if kind is None:
            raise UnsupportedError(f"module {type(module).__name__} ('{node.target}') cannot be converted to IF neurons")
        return kind
    kinds = {operator.add: "add", torch.add: "add", "add": "add", F.relu: "relu", torch.relu: "relu",
             "relu": "relu", torch.flatten: "flatten", "flatten": "flatten"}
    if node.target not in kinds:
        raise UnsupportedError(f"operation {getattr(node.target, '__name__', node.target)} cannot be converted to IF neurons")
    return kinds[node.target]


def ann_to_snn(model: nn.Module, input_shape) -> SpikingGraph:
    """The IF network of a ReLU ANN, every threshold 1 (a spike worth 1) until tuned."""
    traced = trace_ann(model)
    modules = dict(traced.named_modules())
    layers: dict[str, nn.Module] = {}
    sources: dict[str, tuple[str, ...]] = {}
    terms: dict[str, list[str]] = {}  # fx node -> SNN nodes whose outputs sum to its value
    shapes = {"input": tuple(input_shape)}

    def emit(name: str, module: nn.Module, srcs: list[str]) -> str:
        layers[name], sources[name] = module, tuple(srcs)
        if isinstance(module, IFNeurons):
            shapes[name] = shapes[srcs[0]]
        else:
            with torch.no_grad():
                shapes[name] = tuple(module(torch.zeros(1, *shapes[srcs[0]])).shape[1:])
        return name

    def values(ts: list[str], alone_ok: bool) -> list[str]:
        """Sources for a consumer: a spike train that is summed with others goes through Scale (its value)."""
        if alone_ok and len(ts) == 1:
            return ts
        def value(t: str) -> str:  # one Scale per IF layer, shared by every sum it joins
            if not isinstance(layers.get(t), IFNeurons):
                return t
            return f"{t}_value" if f"{t}_value" in layers else emit(f"{t}_value", ScaleLayer(1.0, shapes[t]), [t])

        return [value(t) for t in ts]

    for n in traced.graph.nodes:
        kind, args = _kind(n, modules), [a for a in n.args if isinstance(a, fx.Node)]
        inputs = [t for a in args for t in terms[a.name]]
        if kind == "placeholder":
            terms[n.name] = ["input"]
        elif kind in ("identity", "add"):
            if kind == "add" and len(args) != 2:
                raise UnsupportedError(f"'{n.name}': only the sum of two tensors converts (no constants)")
            terms[n.name] = inputs
        elif kind in ("relu", "output"):
            srcs = values(inputs, alone_ok=False)
            name = "output_if" if kind == "output" else n.name
            terms[n.name] = [emit(name, IFNeurons(shapes[srcs[0]], reset="subtract", initial_potential=0.5), srcs)]
        else:  # weighted (conv/linear, spikes' value folded in later) or linear (pool/flatten)
            module = copy.deepcopy(modules[n.target]) if n.op == "call_module" else nn.Flatten(*n.args[1:3])
            terms[n.name] = [emit(n.name, module, values(inputs, alone_ok=True))]
    return SpikingGraph(input_shape, layers, sources, "output_if")


def _choose(kind: str, act: torch.Tensor, percentile: float, layer: IFNeurons, current, steps: int) -> float:
    positive = act[act > 0]
    if positive.numel() == 0:
        return 1.0  # silent in calibration: any threshold keeps it silent
    top = float(positive.max())
    if kind == "max":
        return top
    if kind == "percentile":
        sample = positive[:: max(1, positive.numel() // 2_000_000)]  # torch.quantile's size limit
        return float(torch.quantile(sample.double(), percentile / 100.0))
    errors = []
    for fraction in SEARCH_FRACTIONS:
        probe = IFNeurons(layer.shape, v_threshold=fraction * top, reset=layer.options.reset,
                          initial_potential=layer.options.initial_potential, dt=layer.options.dt)
        errors.append(float(((probe(current).mean(0) * (fraction * top) - act) ** 2).mean()))
    return float(SEARCH_FRACTIONS[int(np.argmin(errors))] * top)


def _shift_input(snn: SpikingGraph, name: str, delta: torch.Tensor) -> bool:
    """Add delta (per channel) to the input current of IF layer `name` through the bias of a conv or
    linear source that feeds nothing else; False when there is none (the layer is left as it is)."""
    for src in snn.sources[name]:
        module = snn.layers[src] if src in snn.layers else None
        readers = [c for c, srcs in snn.sources.items() if src in srcs]
        if isinstance(module, (nn.Conv2d, nn.Linear)) and readers == [name]:
            if module.bias is None:
                module.bias = nn.Parameter(torch.zeros(module.weight.shape[0]))
            module.bias.data.add_(delta.to(module.bias.dtype))
            return True
    return False


def tune_thresholds(snn: SpikingGraph, calib: torch.Tensor, steps: int, kind: str = "search",
                    percentile: float = 99.9, calibrate_bias: bool = False) -> dict[str, float]:
    """Set every IF threshold from calibration data (see the module docstring); returns them by layer.

    calibrate_bias (search only): after each hidden layer's threshold, shift its input current per
    channel by the calibration mean of (ANN activation clipped to theta - SNN rate x theta), so
    the errors of every layer upstream, already in its spike input, are not passed on on average
    (the bias correction of Li et al., ICML 2021, one pass in graph order)."""
    last_use = {s: name for name, srcs in snn.sources.items() for s in srcs}
    rate = {"input": calib}  # the ANN view: IF output = relu(input) / theta, unclipped
    spikes = {"input": constant_input(calib, steps)} if kind == "search" else {}
    chosen: dict[str, float] = {}
    with torch.no_grad():
        for name in list(snn.layers):
            x = sum(rate[s] for s in snn.sources[name])
            current = sum(spikes[s] for s in snn.sources[name]) if spikes else None
            layer = snn.layers[name]
            if isinstance(layer, IFNeurons):
                act = torch.relu(x)
                if name == snn.output:
                    theta = steps * float(act.max()) if float(act.max()) > 0 else 1.0
                else:
                    theta = _choose(kind, act, percentile, layer, current, steps)
                layer = snn.set_threshold(name, theta)
                chosen[name] = theta
                rate[name] = act / theta
                if spikes:
                    out = layer(current)
                    if calibrate_bias and name != snn.output:
                        error = torch.clamp(act, max=theta) - out.mean(0) * theta
                        delta = error.mean([0, *range(2, error.ndim)])  # per channel (or neuron)
                        if _shift_input(snn, name, delta):
                            current = current + delta.view(-1, *[1] * (error.ndim - 2))
                            out = layer(current)
                    spikes[name] = out
            else:
                rate[name] = layer(x)
                if spikes:
                    y = layer(current.flatten(0, 1))
                    spikes[name] = y.reshape(steps, -1, *y.shape[1:])
            for src in set(snn.sources[name]):
                if last_use.get(src) == name:
                    rate.pop(src, None), spikes.pop(src, None)
    return chosen


def convert_ann(model: nn.Module, calib_x, steps: int = 8, threshold: str = "search", restructure: bool = True,
                percentile: float = 99.9, calibrate_bias: bool = False, tuning: TaskTuning | None = None) -> Conversion:
    """Convert a trained ReLU ANN to an IF SNN; thresholds tuned on calib_x (N, *input_shape) for `steps`,
    then, if `tuning` is given, thresholds and biases tuned on its labelled images (`tune_on_task`)."""
    check_steps(steps)
    if threshold not in THRESHOLDS:
        raise OptionsError(f"threshold must be one of {', '.join(THRESHOLDS)}; got {threshold!r}")
    if not 0 < percentile <= 100:
        raise OptionsError(f"percentile must be in (0, 100], got {percentile!r}")
    calib = torch.as_tensor(np.asarray(calib_x), dtype=torch.float32)
    if calib.ndim < 2 or len(calib) == 0:
        raise DataError(f"calib_x must be a non-empty batch (N, *input_shape), got shape {tuple(calib.shape)}")
    snn = ann_to_snn(model, calib.shape[1:])
    if restructure:
        snn = SpikingGraph.from_nir(restructure_graph(snn.to_nir_graph(METHOD)))
    if calibrate_bias and threshold != "search":
        raise OptionsError("calibrate_bias needs threshold='search' (it corrects the simulated spikes)")
    thresholds = tune_thresholds(snn, calib, steps, threshold, percentile, calibrate_bias)
    if tuning is not None:
        thresholds.update(tune_on_task(snn, tuning, steps))
    graph = snn.to_nir_graph(METHOD, {"thresholds": threshold, "restructured": bool(restructure), "steps": steps,
                                      "bias_calibrated": bool(calibrate_bias), "task_tuned": tuning is not None})
    return Conversion(snn, graph, thresholds, steps, threshold, bool(restructure))


def snn_accuracy(snn: SpikingGraph, x, y, steps: int | list[int], batch_size: int = 250) -> dict[int, float]:
    """Accuracy at each step count in `steps` (a run of T steps per count; the readout needs v at T)."""
    wanted = sorted({check_steps(s) for s in ([steps] if isinstance(steps, int) else steps)})
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y))
    correct = dict.fromkeys(wanted, 0)
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            for t in wanted:
                correct[t] += int((predict(snn.run(constant_input(xb, t))) == yb).sum())
    return {t: c / len(x) for t, c in correct.items()}


def train_resnet(dataset: Dataset | str = "fashion-mnist", blocks: int = 20, width: int = 8, stages: int = 2,
                 epochs: int = 2, seed: int = 0, *, lr: float = 3e-3, batch_size: int = 128,
                 out: str | os.PathLike | None = None, progress: bool = False) -> tuple[nn.Module, dict, History]:
    """CLI entry (`spikestack train resnet`): the narrow post-activation ResNet ANN, Adam on cross-entropy;
    written with `save_ann` (weights + architecture, weights-only loadable) if `out` is given."""
    data = load_dataset(dataset, flatten=False) if isinstance(dataset, str) else dataset
    if len(data.sample_shape) != 3:
        raise DataError(f"the ResNet needs (C, H, W) samples, got {tuple(data.sample_shape)}; load with flatten=False")
    h = data.sample_shape[1]
    spec = ResNetSpec(tuple(data.sample_shape), data.num_classes, width, blocks, stages, 2 if h >= 16 else 1)
    seed_everything(seed)
    model = build_resnet(spec)
    history = fit(model, data, lambda m, x: m(x), lambda m, x: m(x).argmax(1), epochs=epochs, batch_size=batch_size,
                  lr=lr, seed=seed, progress=progress, desc=f"ResNet ANN ({blocks} blocks)")
    if out is not None:
        save_ann(model, spec.to_dict(), out)
    return model.eval(), spec.to_dict(), history


def convert_file(model_path: str | os.PathLike, dataset: Dataset | str = "fashion-mnist", steps: int = 8,
                 threshold: str = "search", restructure: bool = True, calib_size: int = 256,
                 out: str | os.PathLike | None = None, calibrate_bias: bool = False, tune: int = 0) -> Conversion:
    """CLI entry (`spikestack convert MODEL.pt`): load a `save_ann` file (weights_only), calibrate on
    the first `calib_size` training images of `dataset`, convert, and write `out` (.nir) if given;
    `tune` > 0: then `tune_on_task` (rate view: first 10,000 training images; SNN: first `tune`)."""
    model, arch = load_ann(model_path)
    data = load_dataset(dataset, flatten=False) if isinstance(dataset, str) else dataset
    if tuple(data.sample_shape) != tuple(arch.get("in_shape", ())):
        raise DataError(f"{model_path}: the model takes samples {tuple(arch.get('in_shape', ()))}, "
                        f"dataset '{data.name}' has {tuple(data.sample_shape)}")
    tuning = TaskTuning(data.x_train, data.y_train, snn_samples=tune) if tune else None
    conversion = convert_ann(model, data.x_train[:calib_size], steps, threshold, restructure,
                             calibrate_bias=calibrate_bias, tuning=tuning)
    if out is not None:
        conversion.export(out)
    return conversion
