"""Noise-based T=1 training, then conversion to T=N (Jiang & Zhang 2023; BRIEF §6.1).

An IF neuron with subtractive reset and constant input keeps a residual potential spread roughly
uniformly over [0, theta). Training at T=1 with s = H(Wx + b + eps - theta), eps with mean
noise_mean*theta and std noise_std*theta, makes E[s] = clamp((Wx + b)/theta, 0, 1) for eps ~ U(0, theta)
(mean 0.5, std 0.289): the firing rate of that IF neuron at large T. Gaussian noise of that mean and
std is the paper's default. Conversion keeps the weights and runs IF neurons with
subtractive reset for N steps on x as a constant current, reading out output spike counts
(`neurons.predict`: ties go to the higher output membrane).

Where the noise mean lives: eps = noise_mean*theta + eps0 with eps0 zero-mean, and noise_mean*theta is
the neurons' initial potential, in training and deployment alike. So the layers are built once
with initial_potential = noise_mean (theta/2 by default, which turns the IF count floor(Tz/theta)
into round(Tz/theta), the unbiased rate); training adds only eps0. The T=1 deployed network is then
exactly the trained one with its noise at its mean, and the NIR metadata records that initial
potential. With noise='none' there is no residual to model, so the initial potential is 0.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from spikestack.errors import OptionsError
from spikestack.frontend.data import Dataset, load_dataset
from spikestack.frontend.export import export_nir
from spikestack.frontend.targets import neuron_options
from spikestack.frontend.neurons import (
    CurrentNoise, IFNeurons, Readout, SpikingSequential, check_steps, constant_input, predict,
)
from spikestack.frontend.train import (
    History, TrainedModel, accuracy, check_dataset, fit, seed_everything, torch_threads,
)

METHOD = "noise_t1"
NOISES = ("gaussian", "uniform", "none")


def current_noise(kind: str, std: float) -> CurrentNoise | None:
    """Zero-mean membrane noise of standard deviation std*theta per neuron; None for kind 'none'.

    Added to the input current, so divided by the layer's gain (dt*r) to land on v in theta units.
    """
    if kind not in NOISES:
        raise OptionsError(f"noise must be one of {', '.join(NOISES)}; got {kind!r}")
    if not std >= 0:
        raise OptionsError(f"noise_std must be >= 0, got {std!r}")
    if kind == "none" or std == 0:
        return None
    if kind == "gaussian":
        return lambda x, layer: x + torch.randn_like(x) * (std * layer.coef_v_threshold / layer.coef_gain_v)
    half_width = math.sqrt(3.0) * std  # U(-a, a) has std a/sqrt(3)
    return lambda x, layer: x + (torch.rand_like(x) * 2 - 1) * (half_width * layer.coef_v_threshold / layer.coef_gain_v)


def build_mlp(sample_shape: Sequence[int], hidden: Sequence[int], classes: int, *, initial_potential: float = 0.0,
              threshold: float = 1.0, spike_fn: str = "s2nn", reset: str = "subtract",
              fixed_point: str = "loihi") -> SpikingSequential:
    """Linear -> IF (subtractive reset unless told, dt = 1) per layer; Flatten first for image-shaped samples."""
    if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
        raise OptionsError(f"hidden sizes must be positive integers, got {tuple(hidden)}")
    layers: list[nn.Module] = [nn.Flatten()] if len(sample_shape) > 1 else []
    sizes = [math.prod(sample_shape), *hidden, classes]
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), IFNeurons(n_out, v_threshold=threshold, reset=reset,
                                                     initial_potential=initial_potential, spike_fn=spike_fn,
                                                     fixed_point=fixed_point)]
    return SpikingSequential(*layers)


def run_steps(model: SpikingSequential, x: torch.Tensor, steps: int) -> Readout:
    """Run the converted network for `steps` steps with x (B, *shape) as constant input current."""
    return model.run(constant_input(x, steps))


def evaluate_at_steps(model: SpikingSequential, x, y, steps: int) -> float:
    """Accuracy of the converted network: T=steps IF neurons, x as constant current every step."""
    check_steps(steps)
    return accuracy(model, lambda m, xb: predict(run_steps(m, xb, steps)), x, y)


def train_noise_t1(dataset: Dataset, hidden: Sequence[int] = (256,), epochs: int = 20, noise_mean: float = 0.5,
                   noise_std: float = 0.29, noise: str = "gaussian", seed: int = 0, *, surrogate: str = "s2nn",
                   threshold: float = 1.0, lr: float = 3e-3, batch_size: int = 64, device: str = "cpu",
                   progress: bool = True, target: str | None = None) -> tuple[SpikingSequential, History]:
    """Train at T=1 with threshold noise; history.test_accuracy is the deployed accuracy at T=1.
    `target` "netx": IF layers that reset to zero and start at v = 0 (frontend/targets.py); the
    noise still models the potential a layer carries between steps."""
    check_dataset(dataset)
    noise_fn = current_noise(noise, noise_std)
    if noise != "none" and not 0 <= noise_mean < 1:
        raise OptionsError(f"noise_mean is a fraction of the threshold in [0, 1), got {noise_mean!r}")
    seed_everything(seed)
    options = {"initial_potential": noise_mean if noise != "none" else 0.0, **neuron_options(target, METHOD)}
    model = build_mlp(dataset.sample_shape, hidden, dataset.num_classes, threshold=threshold, spike_fn=surrogate,
                      **options)
    history = fit(model, dataset, lambda m, xb: m.run(xb.unsqueeze(0), noise=noise_fn).current,
                  lambda m, xb: predict(run_steps(m, xb, 1)), epochs=epochs, batch_size=batch_size, lr=lr,
                  seed=seed, device=device, progress=progress, desc=f"noise-T1 ({noise})")
    return model, history


def export_noise_t1(model: SpikingSequential, path: str | os.PathLike, input_shape: Sequence[int]) -> Path:
    """Write the converted network: dt=1, subtractive immediate reset, initial potential = noise mean."""
    return export_nir(model, path, METHOD, input_shape)


def train_bptt(dataset: Dataset, hidden: Sequence[int] = (256,), steps: int = 4, epochs: int = 20, seed: int = 0, *,
               surrogate: str = "s2nn", threshold: float = 1.0, lr: float = 3e-3, batch_size: int = 64,
               device: str = "cpu", progress: bool = True) -> tuple[SpikingSequential, History]:
    """The baseline: the same network trained by BPTT through `steps` steps of the converted dynamics.

    Logits are the mean input current of the output layer (= (theta*count + v_T - v_0)/T with
    subtractive reset); initial potential theta/2 as in the converted noise-T1 network.
    """
    check_dataset(dataset)
    check_steps(steps)
    seed_everything(seed)
    model = build_mlp(dataset.sample_shape, hidden, dataset.num_classes, threshold=threshold, spike_fn=surrogate,
                      initial_potential=0.5)
    history = fit(model, dataset, lambda m, xb: run_steps(m, xb, steps).current,
                  lambda m, xb: predict(run_steps(m, xb, steps)), epochs=epochs, batch_size=batch_size, lr=lr,
                  seed=seed, device=device, progress=progress, desc=f"BPTT T={steps}")
    return model, history


def train_demo_model(dataset: Dataset | str = "digits", seed: int = 0, epochs: int = 20, hidden: Sequence[int] = (256,),
                     progress: bool = False, threads: int | None = 1, target: str | None = None) -> TrainedModel:
    """The demo network: 64-256-10 noise-T1 IF MLP on digits, ready to export with `.export(path)`.

    Gaussian noise N(theta/2, (0.29 theta)^2), initial potential theta/2, Adam lr 3e-3, batch 64;
    about 1 s on one core. `threads` limits torch's threads while training (None: leave as is).
    """
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    with torch_threads(threads):
        model, history = train_noise_t1(data, hidden=hidden, epochs=epochs, seed=seed, progress=progress, target=target)
    return TrainedModel(model.cpu(), history, METHOD, tuple(data.sample_shape))
