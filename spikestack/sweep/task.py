"""One sweep task: a configuration (time steps x mode) on one chunk of the test set, from paths alone.

A task carries no arrays, only where to find things: it loads the graph, the chip profiles and the
dataset itself (cached per process, so a worker pays for each once however many chunks it runs) and
hands its chunk to the pipeline job `evaluate_chunk` (encode, simulate with counting, score, estimate
energy and latency on every chip), whose sums are small enough to ship back whatever the chunk size.

Determinism. Each sample is rate-coded from its own seed, derived from (seed, split, index in the
split), so a sample's spikes do not depend on the chunk it falls in or the process that runs it.
Torch runs on one thread inside a task: a product split over several threads may sum in another
order and flip a spike. Energy and latency come back as exact sums (`fractions.Fraction` of the
per-sample floats), so adding chunks up is exact and independent of their order and size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from spikestack.energy import ChipProfile, Placement, load_profile, map_to_cores
from spikestack.frontend.data import load_dataset
from spikestack.frontend.train import torch_threads
from spikestack.ir import Program
from spikestack.ir.quantise import QuantisedProgram, quantise_program
from spikestack.pipeline import ChunkEvaluation, evaluate_chunk, load_program

Options = tuple[tuple[str, object], ...]  # lowering options (preset included), hashable for the caches


@dataclass(frozen=True)
class Source:
    """What every task of a sweep reads: paths and names, never data."""

    graph: str  # absolute path, so workers with another working directory find it
    options: Options
    dataset: str  # 'digits', 'fashion-mnist' or an absolute directory
    chips: tuple[str, ...]  # profile names or absolute YAML paths
    dt_seconds: float | None
    seed: int


@dataclass(frozen=True)
class ChunkTask:
    source: Source
    config: int  # index into the sweep's configurations
    steps: int
    mode: str
    headroom: tuple[tuple[str, int], ...]  # loihi: bits per neuron op, fixed per configuration
    chunk: int
    start: int  # test-set sample range [start, stop)
    stop: int


@dataclass(frozen=True)
class ChunkResult:
    config: int
    chunk: int
    evaluation: ChunkEvaluation  # samples, correct predictions, counts and chip sums of the chunk


def _stamp(path: str) -> int:
    """Modification time: part of every cache key, so a rewritten file is read again. A missing
    file gets -1 and goes on to the loader, which says so in a GraphFileError (never cached)."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


@lru_cache(maxsize=4)
def _program(graph: str, stamp: int, options: Options) -> Program:
    return load_program(graph, **dict(options))


def cached_program(source: Source) -> Program:
    return _program(source.graph, _stamp(source.graph), source.options)


@lru_cache(maxsize=8)
def _quantised(graph: str, stamp: int, options: Options, headroom: tuple[tuple[str, int], ...]) -> QuantisedProgram:
    return quantise_program(_program(graph, stamp, options), dict(headroom))[0]


def cached_quantised(source: Source, headroom: tuple[tuple[str, int], ...]) -> QuantisedProgram:
    return _quantised(source.graph, _stamp(source.graph), source.options, headroom)


@lru_cache(maxsize=16)
def _placement(graph: str, stamp: int, options: Options, chip: str) -> tuple[ChipProfile, Placement]:
    profile = load_profile(chip)
    return profile, map_to_cores(_program(graph, stamp, options), profile)


@lru_cache(maxsize=2)
def _split(dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    data = load_dataset(dataset)  # the other split is dropped here: a worker keeps only what it reads
    return (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)


def dataset_split(dataset: str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, *sample_shape) in [0, 1] and labels of one split, cached per process."""
    return _split(dataset, split)


def clear_caches() -> None:
    """Forget loaded graphs, placements and datasets (the driver's, once a sweep is done: a
    Fashion-MNIST training split alone is 188 MB)."""
    for cache in (_program, _quantised, _placement, _split):
        cache.cache_clear()


def run_chunk(task: ChunkTask) -> ChunkResult:
    """Load (or reuse) what the task names and evaluate its chunk; a pure function of `task`."""
    src = task.source
    with torch_threads(1):
        program = cached_program(src)
        x, y = dataset_split(src.dataset, "test")
        target = cached_quantised(src, task.headroom) if task.mode == "loihi" else program
        chips = [_placement(src.graph, _stamp(src.graph), src.options, chip) for chip in src.chips]
        evaluation = evaluate_chunk(target, x[task.start:task.stop], y[task.start:task.stop], task.steps, src.seed,
                                    task.start, chips, src.dt_seconds)
    return ChunkResult(task.config, task.chunk, evaluation)
