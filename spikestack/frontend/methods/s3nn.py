"""S3NN: single-step (T=1) spiking networks trained with a surrogate gradient (Suetake et al. 2023).

At T=1 an IF neuron starting from v=0 is a binary unit s = H(Wx + b - theta): a spiking ReLU-like
step. The paper's surrogate (`surrogates.s2nn_grad`, BRIEF §6.4) is the default; any registered
surrogate can be chosen, which is what bench/single_step.py compares.

Readout (decided here): the output layer's membrane potential at T=1, which from v=0 is its input
current Wh + b; training minimises cross-entropy on it. The output layer is still an IF layer with
subtractive reset, so the exported graph is a plain chain ending in spikes, and `neurons.predict`
(most output spikes, ties to the higher membrane after reset) equals argmax of that membrane at
T=1: subtracting theta keeps the spiking outputs in their order, and they outrank the silent ones.

Initialisation (decided here): weights N(0, (init_gain/sqrt(fan_in))^2), zero bias. PyTorch's
default uniform init gives currents far below a threshold of 1 after the first binary layer, so deep
networks start silent and the narrow surrogates (rect, sigmoid) never receive a gradient; a gain of 2
puts the initial currents at about the threshold's scale.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from spikestack.errors import DataError, OptionsError
from spikestack.frontend.data import Dataset
from spikestack.frontend.export import export_nir
from spikestack.frontend.targets import neuron_options
from spikestack.frontend.neurons import IFNeurons, SpikingSequential, predict
from spikestack.frontend.surrogates import Surrogate
from spikestack.frontend.train import History, accuracy, check_dataset, fit, seed_everything

METHOD = "s3nn"
ARCHS = ("mlp", "conv")


def _neurons(shape, threshold: float, spike_fn, options: dict) -> IFNeurons:
    return IFNeurons(shape, v_threshold=threshold, **{"reset": "subtract", "initial_potential": 0.0, **options},
                     spike_fn=spike_fn)


def _init(model: nn.Module, gain: float) -> None:
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            fan_in = math.prod(module.weight.shape[1:])
            nn.init.normal_(module.weight, 0.0, gain / math.sqrt(fan_in))
            nn.init.zeros_(module.bias)


def build_s3nn_mlp(sample_shape: Sequence[int], classes: int, depth: int = 6, width: int = 256, *,
                   spike_fn: str | Surrogate = "s2nn", threshold: float = 1.0, init_gain: float = 2.0,
                   target: str | None = None) -> SpikingSequential:
    """`depth` Linear layers (depth - 1 hidden of `width`), each followed by IF neurons (as `target`
    needs them, frontend/targets.py)."""
    options = neuron_options(target, METHOD)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1 or not isinstance(width, int) or width < 1:
        raise OptionsError(f"depth and width must be positive integers, got {depth!r} and {width!r}")
    layers: list[nn.Module] = [nn.Flatten()] if len(sample_shape) > 1 else []
    sizes = [math.prod(sample_shape)] + [width] * (depth - 1) + [classes]
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), _neurons(n_out, threshold, spike_fn, options)]
    model = SpikingSequential(*layers)
    _init(model, init_gain)
    return model


def build_s3nn_convnet(sample_shape: Sequence[int], classes: int, channels: Sequence[int] = (16, 32), *,
                       spike_fn: str | Surrogate = "s2nn", threshold: float = 1.0, init_gain: float = 2.0,
                       target: str | None = None) -> SpikingSequential:
    """Per stage: 3x3 conv (padding 1) -> IF -> 2x2 sum pooling; then Flatten -> Linear -> IF. For a
    `target` without pooling (netx) each stage is a 3x3 conv of stride 2 -> IF instead."""
    options = neuron_options(target, METHOD)
    if len(sample_shape) != 3:
        raise DataError(f"the convnet needs (channels, height, width) samples, got {tuple(sample_shape)}; load with flatten=False")
    c, h, w = sample_shape
    layers: list[nn.Module] = []
    for out in channels:
        if h < 2 or w < 2:
            raise DataError(f"samples {tuple(sample_shape)} are too small for {len(channels)} pooling stages")
        # LPPool2d with norm 1 is sum pooling: spike counts, exported as NIR SumPool2d.
        if target is None:
            layers += [nn.Conv2d(c, out, 3, padding=1), _neurons((out, h, w), threshold, spike_fn, options),
                       nn.LPPool2d(1, 2)]
            c, h, w = out, h // 2, w // 2
        else:  # the same output size as conv + pool, without a pool
            layers += [nn.Conv2d(c, out, 3, stride=2, padding=1),
                       _neurons((out, (h + 1) // 2, (w + 1) // 2), threshold, spike_fn, options)]
            c, h, w = out, (h + 1) // 2, (w + 1) // 2
    layers += [nn.Flatten(), nn.Linear(c * h * w, classes), _neurons(classes, threshold, spike_fn, options)]
    model = SpikingSequential(*layers)
    _init(model, init_gain)
    return model


def s3nn_logits(model: SpikingSequential, x: torch.Tensor) -> torch.Tensor:
    """Output membrane at T=1 (its input current, from v=0): the training logits."""
    return model.run(x.unsqueeze(0)).current


def s3nn_predict(model: SpikingSequential, x: torch.Tensor) -> torch.Tensor:
    return predict(model.run(x.unsqueeze(0)))


def train_s3nn(dataset: Dataset, arch: str = "mlp", depth: int = 6, width: int = 256, surrogate: str = "s2nn",
               epochs: int = 10, seed: int = 0, *, lr: float = 1e-3, batch_size: int = 64, threshold: float = 1.0,
               init_gain: float = 2.0, device: str = "cpu", progress: bool = True,
               target: str | None = None) -> tuple[SpikingSequential, History]:
    """Train a T=1 MLP (`depth` layers) or the small convnet; history.test_accuracy is at T=1.
    `target`: build the network as that deployment target needs it (frontend/targets.py)."""
    check_dataset(dataset)
    if arch not in ARCHS:
        raise OptionsError(f"arch must be one of {', '.join(ARCHS)}; got {arch!r}")
    seed_everything(seed)
    common = dict(spike_fn=surrogate, threshold=threshold, init_gain=init_gain, target=target)
    if arch == "mlp":
        model = build_s3nn_mlp(dataset.sample_shape, dataset.num_classes, depth, width, **common)
    else:
        model = build_s3nn_convnet(dataset.sample_shape, dataset.num_classes, **common)
    history = fit(model, dataset, s3nn_logits, s3nn_predict, epochs=epochs, batch_size=batch_size, lr=lr,
                  seed=seed, device=device, progress=progress, desc=f"S3NN {arch} ({surrogate})")
    return model, history


def evaluate_s3nn(model: SpikingSequential, x, y) -> tuple[float, float]:
    """(accuracy at T=1, mean spikes per sample over all neuron layers, output included)."""
    spikes: list[torch.Tensor] = []

    def predict_and_count(m: SpikingSequential, xb: torch.Tensor) -> torch.Tensor:
        readout = m.run(xb.unsqueeze(0))
        spikes.append(readout.spikes.cpu())
        return predict(readout)

    acc = accuracy(model, predict_and_count, x, y)
    return acc, float(torch.cat(spikes).mean())


def export_s3nn(model: SpikingSequential, path: str | os.PathLike, input_shape: Sequence[int]) -> Path:
    """Write the T=1 network (dt=1, subtractive reset, initial potential 0); run it for one step."""
    return export_nir(model, path, METHOD, input_shape)
