"""HNSG: spiking subnetworks hidden in random weights (Wu, Fang & Kang, AICAS 2023; BRIEF §6.3).

The weights never train. Each layer keeps frozen random weights W (signed Kaiming constant by
default: ±sqrt(2/fan_in), a random sign per weight) and learns one score S per weight; the forward
pass uses W_eff = W ⊙ m, where m keeps the `keep` fraction of weights with the largest |S| in that
layer. Top-k has no gradient, so the score gradient is straight-through (an autograd.Function):

    dL/dS = dL/dW_eff · W · sign(S)

sign(S) is d|S|/dS: the ranking uses |S|, so without it every negative score moves |S| the wrong
way (a weight the loss wants kept loses rank, one it wants dropped gains it). Measured on digits:
the output layer falls silent and accuracy stays at or below chance (tests/frontend/test_hnsg.py
checks both cases). The network is an MLP of LIF layers
(frontend `LIFNeurons`, tau = 2 steps, reset to zero) trained by surrogate BPTT over `steps` steps
with the image as a constant input current; the loss is cross-entropy on output spike counts,
the quantity the deployed readout (`neurons.predict`) ranks.

Export: `materialise_supermasks` replaces every supermask layer by a plain bias-free `nn.Linear`
holding W ⊙ m, so the NIR graph carries only the kept weights and the rest are exact zeros.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spikestack.errors import OptionsError
from spikestack.frontend.data import Dataset, load_dataset
from spikestack.frontend.export import export_nir
from spikestack.frontend.targets import neuron_options
from spikestack.frontend.neurons import (
    LIFNeurons, Readout, SpikingSequential, check_steps, constant_input, predict,
)
from spikestack.frontend.train import (
    History, TrainedModel, accuracy, check_dataset, fit, seed_everything, torch_threads,
)

METHOD = "hnsg"
INITS = ("signed_constant", "kaiming_normal")


def topk_mask(scores: torch.Tensor, keep: float) -> torch.Tensor:
    """1 for the round(keep * n) largest |scores| of the tensor, 0 elsewhere (exactly k ones)."""
    flat = scores.detach().abs().flatten()
    k = max(1, round(keep * flat.numel()))
    mask = torch.zeros_like(flat)
    mask[flat.topk(k, sorted=False).indices] = 1.0
    return mask.view_as(scores)


class SupermaskWeight(torch.autograd.Function):
    """W ⊙ topk_mask(S) forward; straight-through score gradient dL/dW_eff · W (· sign(S))."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, weight: torch.Tensor, keep: float, sign_term: bool) -> torch.Tensor:
        ctx.save_for_backward(scores, weight)
        ctx.sign_term = sign_term
        return weight * topk_mask(scores, keep)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        scores, weight = ctx.saved_tensors
        grad_scores = grad * weight  # every score gets a gradient, kept or not: that is how weights enter
        if ctx.sign_term:
            grad_scores = grad_scores * torch.sign(scores)
        return grad_scores, None, None, None


class SupermaskLinear(nn.Module):
    """A bias-free linear layer with frozen random weights and a learned top-k score mask."""

    def __init__(self, in_features: int, out_features: int, keep: float = 0.5, sign_term: bool = True,
                 init: str = "signed_constant"):
        super().__init__()
        if not 0.0 < keep <= 1.0:
            raise OptionsError(f"keep is the fraction of weights kept per layer, in (0, 1]; got {keep!r}")
        if init not in INITS:
            raise OptionsError(f"init must be one of {', '.join(INITS)}; got {init!r}")
        self.in_features, self.out_features, self.keep, self.sign_term, self.init = (
            in_features, out_features, float(keep), bool(sign_term), init)
        std = math.sqrt(2.0 / in_features)  # Kaiming (ReLU gain) for the fan-in
        weight = torch.randn(out_features, in_features) * std
        if init == "signed_constant":
            weight = torch.sign(weight) * std
        self.register_buffer("weight", weight)  # a buffer: the optimiser never sees it
        # Edge-popup's score init (Kaiming uniform, as nn.Linear's weights): random initial ranks.
        self.scores = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.scores, a=math.sqrt(5))

    def effective_weight(self) -> torch.Tensor:
        return SupermaskWeight.apply(self.scores, self.weight, self.keep, self.sign_term)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight())

    def to_linear(self) -> nn.Linear:
        """The deployed layer: W ⊙ m in a plain nn.Linear, dropped weights exactly 0."""
        linear = nn.Linear(self.in_features, self.out_features, bias=False)
        with torch.no_grad():
            linear.weight.copy_(self.weight * topk_mask(self.scores, self.keep))
        return linear.to(self.weight.device)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, keep={self.keep}, sign_term={self.sign_term}, init={self.init}"


def build_lif_mlp(sample_shape: Sequence[int], hidden: Sequence[int], classes: int, *, supermask: bool = True,
                  keep: float = 0.5, sign_term: bool = True, init: str = "signed_constant", tau: float = 2.0,
                  threshold: float = 1.0, spike_fn: str = "sigmoid", target: str | None = None) -> SpikingSequential:
    """Flatten (image samples) -> [Linear -> LIF] per layer; supermask layers, or dense bias-free ones."""
    if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
        raise OptionsError(f"hidden sizes must be positive integers, got {tuple(hidden)}")
    layers: list[nn.Module] = [nn.Flatten()] if len(sample_shape) > 1 else []
    sizes = [math.prod(sample_shape), *hidden, classes]
    options = {"reset": "zero", **neuron_options(target, METHOD)}  # already netx's reset and start
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        if supermask:
            linear = SupermaskLinear(n_in, n_out, keep, sign_term, init)
        else:  # the same Kaiming scale as the frozen weights: PyTorch's default starts the LIF layers silent
            linear = nn.Linear(n_in, n_out, bias=False)
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        layers += [linear, LIFNeurons(n_out, tau=tau, v_threshold=threshold, spike_fn=spike_fn, **options)]
    return SpikingSequential(*layers)


def materialise_supermasks(model: SpikingSequential) -> SpikingSequential:
    """A copy of `model` with each supermask layer replaced by its masked nn.Linear (for export and runs)."""
    return SpikingSequential(*[m.to_linear() if isinstance(m, SupermaskLinear) else m for m in model])


def _train(model: SpikingSequential, dataset: Dataset, steps: int, epochs: int, seed: int, lr: float,
           batch_size: int, device: str, progress: bool, desc: str, rate_penalty: float = 0.0) -> History:
    check_steps(steps)
    if not rate_penalty >= 0:
        raise OptionsError(f"rate_penalty must be >= 0, got {rate_penalty!r}")

    def logits(m: SpikingSequential, xb: torch.Tensor):
        # Logits = output spike counts over T (surrogate gradients): what `predict` ranks at deployment.
        readout = m.run(constant_input(xb, steps))
        if not rate_penalty:
            return readout.counts
        # Cost on the mean firing rate (spikes per neuron per step), the activity the chip pays for.
        return readout.counts, rate_penalty * readout_rate(m, readout, steps).mean()

    return fit(model, dataset, logits, lambda m, xb: predict(m.run(constant_input(xb, steps))), epochs=epochs,
               batch_size=batch_size, lr=lr, seed=seed, device=device, progress=progress, desc=desc)


def train_hnsg(dataset: Dataset, hidden: Sequence[int] = (512,), keep: float = 0.5, steps: int = 8, epochs: int = 5,
               seed: int = 0, sign_term: bool = True, *, init: str = "signed_constant", tau: float = 2.0,
               threshold: float = 1.0, surrogate: str = "sigmoid", lr: float = 1e-2, batch_size: int = 64,
               device: str = "cpu", progress: bool = True, rate_penalty: float = 0.0,
               target: str | None = None) -> tuple[SpikingSequential, History]:
    """Learn only the masks of a random-weight LIF MLP; history.test_accuracy is at T = steps.
    rate_penalty: weight of the mean firing rate added to the loss (0: cross-entropy alone);
    target: the deployment target the network is built for (frontend/targets.py)."""
    check_dataset(dataset)
    seed_everything(seed)
    model = build_lif_mlp(dataset.sample_shape, hidden, dataset.num_classes, supermask=True, keep=keep,
                          sign_term=sign_term, init=init, tau=tau, threshold=threshold, spike_fn=surrogate,
                          target=target)
    desc = f"HNSG keep={keep}{'' if sign_term else ' (no sign term)'}"
    return model, _train(model, dataset, steps, epochs, seed, lr, batch_size, device, progress, desc, rate_penalty)


def train_dense_lif(dataset: Dataset, hidden: Sequence[int] = (512,), steps: int = 8, epochs: int = 5, seed: int = 0,
                    *, tau: float = 2.0, threshold: float = 1.0, surrogate: str = "sigmoid", lr: float = 1e-3,
                    batch_size: int = 64, device: str = "cpu", progress: bool = True) -> tuple[SpikingSequential, History]:
    """The baseline: the same LIF MLP with every weight trained by the same BPTT (bias-free, all kept)."""
    check_dataset(dataset)
    seed_everything(seed)
    model = build_lif_mlp(dataset.sample_shape, hidden, dataset.num_classes, supermask=False, tau=tau,
                          threshold=threshold, spike_fn=surrogate)
    return model, _train(model, dataset, steps, epochs, seed, lr, batch_size, device, progress, "dense BPTT")


def readout_rate(model: SpikingSequential, readout: Readout, steps: int) -> torch.Tensor:
    """Per sample: spikes of all LIF layers (output included) / (neurons x steps)."""
    return readout.spikes / (sum(math.prod(layer.shape) for layer in model.neuron_layers()) * steps)


def firing_rate(model: SpikingSequential, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Per sample: the firing rate of `model` on x (B, *shape) as a constant current for `steps`."""
    return readout_rate(model, model.run(constant_input(x, steps)), steps)


def evaluate_hnsg(model: SpikingSequential, x, y, steps: int = 8) -> tuple[float, float]:
    """(accuracy at T = steps, mean firing rate of all neuron layers per neuron per step)."""
    check_steps(steps)
    rates: list[torch.Tensor] = []

    def predict_and_rate(m: SpikingSequential, xb: torch.Tensor) -> torch.Tensor:
        readout = m.run(constant_input(xb, steps))
        rates.append(readout_rate(m, readout, steps).cpu())
        return predict(readout)

    acc = accuracy(model, predict_and_rate, x, y)
    return acc, float(torch.cat(rates).mean())


def export_hnsg(model: SpikingSequential, path: str | os.PathLike, input_shape: Sequence[int]) -> Path:
    """Write the masked network (dt = 1, LIF reset to zero, v0 = 0); dropped weights are exact zeros."""
    deployed = materialise_supermasks(model)
    return export_nir(deployed, path, METHOD, input_shape)


def train_hnsg_model(dataset: Dataset | str = "digits", hidden: Sequence[int] = (512,), keep: float = 0.5,
                     steps: int = 8, epochs: int = 5, seed: int = 0, sign_term: bool = True, progress: bool = False,
                     threads: int | None = 1) -> TrainedModel:
    """CLI entry (`spikestack train hnsg`): train, then return the masked network; `.export(path)` writes it.

    The returned model holds plain masked nn.Linear layers, so it runs and exports like any chain.
    """
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    with torch_threads(threads):
        model, history = train_hnsg(data, hidden=hidden, keep=keep, steps=steps, epochs=epochs, seed=seed,
                                    sign_term=sign_term, progress=progress)
    deployed = materialise_supermasks(model).cpu()
    return TrainedModel(deployed, history, METHOD, tuple(data.sample_shape))
