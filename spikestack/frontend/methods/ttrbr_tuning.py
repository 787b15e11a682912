"""Task tuning of a converted SNN's thresholds and biases (our addition to TTRBR; docs/hnsg_ttrbr.md).

`tune_thresholds`' search matches each IF layer's rate to the ANN's activation, one layer at a time.
On the 20-block Fashion-MNIST ResNet that leaves the SNN 12-27 pt below the ANN at T=8, and the loss
is not the quantisation: the *quantised rate network* (every IF layer replaced by the count it would
give for a constant input over T steps) is as accurate as the ANN. What remains is the deviation
error of BRIEF §6.2 (spike trains arriving unevenly within T steps), which no per-layer rate target
sees. So, with every weight frozen at the ANN's, on labelled training images:

1. one threshold factor per hidden IF layer is learned on the quantised rate view: the count
   clamp(floor(T u + 1/2), 0, T) / T of u = current / threshold (initial potential theta/2), floor
   passed straight through (as QCFS, Bu et al., ICLR 2022); cheap, with no time dimension;
2. the same factors and every synapse bias are learned on the SNN itself at the deployed T, by
   backpropagation through time with the IF layers' surrogate gradient: the only step that sees the
   deviation error. The loss is on the output layer's mean input current, which is what the
   readout ranks (the output layer integrates without spiking over the deployed steps).

The factors are folded into the thresholds (`SpikingGraph.set_threshold`), so the exported graph is
an ordinary IF network; the biases are the synapses' own. A threshold factor s is learned as an
input scale: IF(x / s) with spikes worth s is IF with threshold theta * s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikestack.errors import DataError, OptionsError
from spikestack.frontend.methods.ttrbr_models import SpikingGraph
from spikestack.frontend.neurons import IFNeurons, constant_input


RATE_BATCH = 128  # the rate view has no time dimension: a larger batch costs little


@dataclass(frozen=True, eq=False)
class TaskTuning:
    """Labelled images (x: (N, *input_shape), y: (N,), e.g. a whole training set) and the budget of
    `tune_on_task`: one pass of the rate view over the first `rate_samples` of them, then one of the
    SNN over the first `snn_samples`."""

    x: np.ndarray
    y: np.ndarray
    rate_samples: int = 10_000
    snn_samples: int = 5_000
    biases: bool = True
    batch_size: int = 32
    rate_lr: float = 1e-2
    snn_lr: float = 3e-3
    seed: int = 0

    def __post_init__(self):
        for name in ("rate_samples", "snn_samples", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "batch_size" else 0):
                raise OptionsError(f"task tuning: {name} must be an integer >= {int(name == 'batch_size')}, got {value!r}")
        if len(self.x) != len(self.y) or len(self.x) == 0:
            raise DataError(f"task tuning needs as many labels as images (at least one): {len(self.x)} images, "
                            f"{len(self.y)} labels")


def _logits(snn: SpikingGraph, factors: dict[str, torch.Tensor], x: torch.Tensor, steps: int,
            spiking: bool) -> torch.Tensor:
    """The output layer's mean input current, from the SNN (x constant over `steps`) or from its
    quantised rate view (x once, as a one-step sequence)."""

    def hidden(name: str, layer: IFNeurons, current: torch.Tensor) -> torch.Tensor:
        scale = torch.exp(factors[name])
        if spiking:
            return layer(current / scale) * scale
        u = current / (scale * snn.threshold(name))
        linear = u.clamp(0, 1)
        count = torch.clamp(torch.floor(u * steps + 0.5), 0, steps) / steps
        return (linear + (count - linear).detach()) * scale

    return snn.run(constant_input(x, steps) if spiking else x.unsqueeze(0), hidden).current


def _one_pass(snn, factors, groups, x, y, steps, spiking, batch_size, seed) -> None:
    optimiser = torch.optim.Adam(groups)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        loss = F.cross_entropy(_logits(snn, factors, x[idx], steps, spiking), y[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def tune_on_task(snn: SpikingGraph, tuning: TaskTuning, steps: int) -> dict[str, float]:
    """Learn threshold factors, then factors and biases, for `steps` (module docstring); fold the
    factors into the thresholds of `snn` in place and return the new thresholds by layer."""
    hidden = [n for n, m in snn.layers.items() if isinstance(m, IFNeurons) and n != snn.output]
    factors = {n: nn.Parameter(torch.zeros(())) for n in hidden}
    biases = [m.bias for m in snn.layers.values()
              if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None] if tuning.biases else []
    x = torch.as_tensor(np.asarray(tuning.x), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(tuning.y)).long()
    trainable = {id(p) for p in biases}
    flags = {p: p.requires_grad for p in snn.parameters()}
    try:
        for p in snn.parameters():
            p.requires_grad_(id(p) in trainable)
        rate_groups = [{"params": list(factors.values()), "lr": tuning.rate_lr}]
        n = tuning.rate_samples
        if n:
            _one_pass(snn, factors, rate_groups, x[:n], y[:n], steps, False, RATE_BATCH, tuning.seed)
        snn_groups = [{"params": list(factors.values()), "lr": tuning.snn_lr}]
        if biases:
            snn_groups.append({"params": biases, "lr": tuning.snn_lr / 10})
        n = tuning.snn_samples
        if n:
            _one_pass(snn, factors, snn_groups, x[:n], y[:n], steps, True, tuning.batch_size, tuning.seed + 1)
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
    thresholds = {}
    with torch.no_grad():
        for name in hidden:
            theta = snn.threshold(name) * float(torch.exp(factors[name]))
            snn.set_threshold(name, theta)
            thresholds[name] = theta
    return thresholds
