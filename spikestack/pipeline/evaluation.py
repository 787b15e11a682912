"""`evaluate_chunk`: a run of dataset samples through the stages, as one small result: the sweep's job.

Rate-code the samples (one seed per sample, `frontend.data.encode_rate_samples`, the encoder `deploy`
uses too), simulate with operation counting, score the predictions, and estimate energy and latency
on every chip. The result is sums only, small whatever the number of samples: counts per node and
metric as integers, energy and latency as exact sums (`fractions.Fraction` of the per-sample
floats), so results of several chunks add up exactly, in any order and for any chunk size.

A pure function of its arguments. It takes arrays and loaded objects, not paths: the caller decides
what to cache and where to run (`spikestack.sweep` keeps graphs, placements and datasets per worker
process and schedules chunks on Dask).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from spikestack.energy import Budget, ChipProfile, Placement, estimate
from spikestack.errors import DataError
from spikestack.frontend.data import encode_rate_samples
from spikestack.ir import Program
from spikestack.ir.quantise import QuantisedProgram
from spikestack.pipeline.stages import predict
from spikestack.simulators import simulate


@dataclass(frozen=True)
class ChunkEvaluation:
    """What one chunk of samples gave: every field a sum over its samples."""

    samples: int
    correct: int
    counts: dict[str, dict[str, int]]  # node -> metric -> sum over steps and samples
    chips: dict[str, dict]  # chip name -> energy, latency (exact sums, or None if unknown), *_complete flags


def input_shape(program: Program) -> tuple[int, ...]:
    """The shape of one sample of the graph's only Input; a DataError if it has several."""
    if len(program.inputs) != 1:
        raise DataError(f"a sweep feeds one dataset into one Input; the graph has {len(program.inputs)}")
    return tuple(program.op(program.inputs[0]).out_shape)


def encode_samples(program: Program, images: np.ndarray, steps: int, seed: int, first_index: int,
                   split: str = "test") -> np.ndarray:
    """Rate-coded spikes (steps, B, *input shape) for samples first_index.. of a dataset split, shaped
    for the graph's input (flat or channel-first images alike); a DataError if their sizes differ."""
    shape = input_shape(program)
    if int(np.prod(images.shape[1:])) != int(np.prod(shape)):
        raise DataError(f"dataset samples have shape {tuple(images.shape[1:])}, the graph's input takes {shape}")
    return encode_rate_samples(images.reshape((len(images), *shape)), steps, seed, first_index, split)


def _exact_sum(values: np.ndarray | None) -> Fraction | None:
    return None if values is None else sum((Fraction(float(v)) for v in values), Fraction(0))


def _chip_sums(budget: Budget) -> dict:
    return {"energy": _exact_sum(budget.energy_per_sample), "latency": _exact_sum(budget.latency_per_sample),
            "energy_complete": budget.energy_complete, "latency_complete": budget.latency_complete}


def evaluate_chunk(target: Program | QuantisedProgram, images: np.ndarray, labels: np.ndarray, steps: int,
                   seed: int, first_index: int, chips: Sequence[tuple[ChipProfile, Placement]] = (),
                   dt_seconds: float | None = None) -> ChunkEvaluation:
    """Encode, simulate, count, score and estimate samples first_index.. of a test split.

    target: the lowered graph (float arithmetic) or its `quantise_program` result (Loihi's integers).
    images (N, *sample shape) in [0, 1] and labels (N,): the chunk's samples, which are rate-coded over
    `steps` steps from `seed`, each from its own stream (`encode_rate_samples`). chips: each chip's
    profile with the graph's placement on it (`energy.map_to_cores`). dt_seconds: seconds per step,
    for static power and real-time chips (None: the chip's estimate goes without).
    """
    program = getattr(target, "program", target)  # a QuantisedProgram wraps the float graph
    mode = "float" if target is program else "loihi"
    if len(images) != len(labels):
        raise DataError(f"{len(images)} samples but {len(labels)} labels")
    spikes = encode_samples(program, images, steps, seed, first_index)
    last = program.neuron_ops[-1].name  # its v breaks ties between equal spike counts
    run = simulate(target, spikes, mode=mode, record=(last,))
    correct = int((predict(run, program) == labels).sum())
    counts = {node: {metric: int(a.sum()) for metric, a in metrics.items()}
              for node, metrics in run.counts.per_node.items()}
    sums = {profile.name: _chip_sums(estimate(run.counts, placement, profile, dt_seconds))
            for profile, placement in chips}
    return ChunkEvaluation(len(labels), correct, counts, sums)
