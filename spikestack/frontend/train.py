"""The training loop every method shares: seeds, mini-batch Adam, tqdm progress, a `History`.

A method supplies two functions: `logits_fn(model, x)` (differentiable training logits for a batch)
and `predict_fn(model, x)` (class ids, evaluated without gradients). Everything else (shuffling,
timing, accuracy) lives here once, so epoch times of different methods are measured the same way.
`TrainedModel` bundles a trained network with what `export_nir` needs to write it.
"""

from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from spikestack.errors import DataError, OptionsError
from spikestack.frontend.data import Dataset
from spikestack.frontend.export import export_nir, model_options
from spikestack.ir.options import LoweringOptions

# logits, or (logits, penalty): a scalar added to the cross-entropy (e.g. a firing-rate cost)
LogitsFn = Callable[[nn.Module, torch.Tensor], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"]
PredictFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]
SCHEDULES = ("constant", "cosine")


@dataclass
class History:
    """Per-epoch mean training loss, training accuracy and wall time; test accuracy after training."""

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    test_accuracy: float | None = None


@dataclass
class TrainedModel:
    """A trained network plus everything `export_nir` needs; `export(path)` writes the `.nir` file."""

    model: nn.Module
    history: History
    method: str
    input_shape: tuple[int, ...]

    @property
    def options(self) -> LoweringOptions:
        """The lowering options the model's neuron layers were built with (`model_options`)."""
        return model_options(self.model)

    def export(self, path: str | os.PathLike) -> Path:
        return export_nir(self.model, path, self.method, self.input_shape)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) so a run is repeatable on one machine."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise OptionsError(f"seed must be an integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` intra-op threads (None: unchanged), then restore the previous number.

    Networks of a few hundred neurons train several times faster on one thread than on two, and
    far faster when other processes compete for the cores (measured: 2.7 vs 50 ms per batch).
    """
    previous = torch.get_num_threads()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise OptionsError(f"threads must be a positive integer, got {threads!r}")
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_dataset(dataset: Dataset) -> None:
    if not isinstance(dataset, Dataset):
        raise DataError(f"expected a spikestack Dataset (see frontend.data.load_dataset), got {type(dataset).__name__}")
    if len(dataset.x_train) == 0 or len(dataset.x_test) == 0:
        raise DataError(f"dataset '{dataset.name}' has an empty train or test split")


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters (or, lacking any, its buffers) live."""
    tensor = next(model.parameters(), None)
    tensor = tensor if tensor is not None else next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def accuracy(model: nn.Module, predict_fn: PredictFn, x, y, batch_size: int = 1000) -> float:
    """Fraction of samples whose prediction equals the label (inputs moved to the model's device)."""
    device = model_device(model)
    like = next(model.parameters(), None)  # inputs in the model's dtype (float64 copies run too)
    x = torch.as_tensor(np.asarray(x), dtype=like.dtype if like is not None else torch.get_default_dtype())
    y = torch.as_tensor(np.asarray(y))
    if len(x) != len(y) or len(x) == 0:
        raise DataError(f"need equally many inputs and labels, got {len(x)} and {len(y)}")
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            pred = predict_fn(model, x[start:start + batch_size].to(device))
            correct += int((pred.cpu() == y[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / len(x)


def fit(model: nn.Module, dataset: Dataset, logits_fn: LogitsFn, predict_fn: PredictFn, *, epochs: int,
        batch_size: int = 64, lr: float = 1e-3, seed: int = 0, device: str | torch.device = "cpu",
        progress: bool = True, desc: str = "train", schedule: str = "constant") -> History:
    """Adam on cross-entropy of `logits_fn`, shuffled mini-batches; test accuracy with `predict_fn`.

    schedule: 'constant' learning rate, or 'cosine' annealing from lr to 0 over all batches (per batch,
    so a short run still ends annealed)."""
    check_dataset(dataset)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionsError(f"{name} must be an integer >= 1, got {value!r}")
    if not lr > 0:
        raise OptionsError(f"lr must be positive, got {lr!r}")
    if schedule not in SCHEDULES:
        raise OptionsError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
    model.to(device)
    x = torch.as_tensor(dataset.x_train, dtype=torch.get_default_dtype(), device=device)
    y = torch.as_tensor(dataset.y_train, device=device)
    # Shuffling draws from its own generator, so the order does not depend on how much noise was drawn.
    order_rng = torch.Generator().manual_seed(seed)
    # The fused kernel updates all parameters in one call: at these small sizes the unfused Adam step
    # is ~15% of a T=1 training step, overhead that would blur the T=1 vs BPTT training-time claim.
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=torch.device(device).type in ("cpu", "cuda"))
    batches_per_epoch = -(-len(x) // batch_size)
    annealing = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * batches_per_epoch)
                 if schedule == "cosine" else None)
    history = History()
    model.train()
    for epoch in range(epochs):
        start = time.perf_counter()
        total_loss = correct = 0.0
        perm = torch.randperm(len(x), generator=order_rng).to(device)
        batches = tqdm(range(0, len(x), batch_size), desc=f"{desc} {epoch + 1}/{epochs}", leave=False, disable=not progress)
        for first in batches:
            idx = perm[first:first + batch_size]
            out = logits_fn(model, x[idx])
            logits, penalty = out if isinstance(out, tuple) else (out, 0.0)
            loss = F.cross_entropy(logits, y[idx]) + penalty
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if annealing is not None:
                annealing.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += float((logits.detach().argmax(1) == y[idx]).sum())
            batches.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
        history.epoch_seconds.append(time.perf_counter() - start)
        history.loss.append(total_loss / len(x))
        history.train_accuracy.append(correct / len(x))
    history.test_accuracy = accuracy(model, predict_fn, dataset.x_test, dataset.y_test)
    return history
