"""Plan a sweep in the driver: check every input, calibrate Loihi's headroom, cut the work into tasks.

Everything that can be wrong with a request is found here, before a scheduler is contacted or a
task sent, and raised as one `SpikestackError`: bad lists of steps or modes, an unknown chip, a
graph that does not fit a chip (or that Loihi's integers cannot express), a missing dataset or one
whose samples do not fit the graph's input.

Loihi headroom. Quantising needs the range of each layer's v (`headroom_from_run`). It is measured
once per configuration, in the driver, by a float run on a calibration set: the first
`calibration_samples` images of the *training* split, each rate-coded from its own seed. Every chunk
of that configuration then runs the same integers, so the results do not depend on how the test set
is chunked or scheduled, and the test set is never used to tune what is measured on it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from spikestack.checks import check_count, check_positive
from spikestack.energy import load_profile, map_to_cores
from spikestack.errors import ChipError, DataError, OptionsError
from spikestack.frontend.train import torch_threads
from spikestack.ir.quantise import headroom_from_run
from spikestack.simulators import simulate
from spikestack.pipeline.evaluation import encode_samples
from spikestack.sweep import MODES
from spikestack.sweep.task import ChunkTask, Source, cached_program, cached_quantised, dataset_split

_ADDRESS = re.compile(r"^([a-z]+://\S+|[^\s/]+:\d+)$")  # tcp://host:8786, tls://[::1]:8786, host:8786


@dataclass(frozen=True)
class Config:
    steps: int
    mode: str
    headroom: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class SweepPlan:
    source: Source
    configs: tuple[Config, ...]
    chunks: tuple[tuple[int, int], ...]  # test-set sample ranges
    chip_names: tuple[str, ...]  # profile names, in the order asked
    samples: int
    dt_source: str

    @property
    def tasks(self) -> list[ChunkTask]:
        return [ChunkTask(self.source, i, c.steps, c.mode, c.headroom, k, start, stop)
                for i, c in enumerate(self.configs) for k, (start, stop) in enumerate(self.chunks)]


def parse_list(value: str | Sequence, name: str, cast=str) -> tuple:
    """'8,16,32' or [8, 16, 32] -> a tuple without repeats; an OptionsError names the bad item."""
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    try:
        parsed = tuple(dict.fromkeys(cast(v) for v in items if v != ""))
    except (TypeError, ValueError):
        raise OptionsError(f"{name}: expected a comma-separated list of {cast.__name__}, got {value!r}") from None
    if not parsed:
        raise OptionsError(f"{name}: give at least one value")
    return parsed


def check_scheduler(scheduler: str, workers: int | None, timeout: float) -> None:
    check_count(workers, "workers")
    check_positive(timeout, "connect timeout (seconds)", required=True)
    if scheduler not in ("none", "local") and not _ADDRESS.match(scheduler):
        raise OptionsError(f"scheduler must be 'none', 'local' or a scheduler address such as "
                           f"tcp://host:8786; got {scheduler!r}")
    if workers is not None and scheduler != "local":
        raise OptionsError("workers applies to scheduler 'local' only (an existing cluster has its own)")


def _dataset(name: str) -> str:
    """'digits' and 'fashion-mnist' stay names; a directory becomes absolute for the workers."""
    if name in ("digits", "fashion-mnist"):
        return name
    if not Path(name).is_dir():
        raise DataError(f"{name}: dataset directory not found (or use 'digits' or 'fashion-mnist')")
    return str(Path(name).resolve())


def _chips(chips: Sequence[str], program) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Profile specs (names, or absolute paths) and their names; every chip must hold the network."""
    specs, names = [], []
    for chip in parse_list(chips, "chips"):
        profile = load_profile(chip)  # ChipError for an unknown name or a bad file
        if profile.name in names:
            raise ChipError(f"two chips are named '{profile.name}': rename one profile")
        map_to_cores(program, profile)  # ChipError naming the layer and limit that do not fit
        is_path = os.sep in chip or "/" in chip or chip.endswith((".yaml", ".yml"))  # `load_profile`'s rule
        specs.append(str(Path(chip).resolve()) if is_path else chip)
        names.append(profile.name)
    return tuple(specs), tuple(names)


def calibrate(source: Source, steps: int, samples: int) -> tuple[tuple[str, int], ...]:
    """Headroom bits per spiking neuron op from a float run on the calibration set."""
    program = cached_program(source)
    x, _ = dataset_split(source.dataset, "train")
    spikes = encode_samples(program, x[:samples], steps, source.seed, 0, split="train")
    record = tuple(op.name for op in program.neuron_ops if op.params.spiking)
    with torch_threads(1):
        run = simulate(program, spikes, mode="float", record=record, count=False)
    return tuple(sorted(headroom_from_run(program, run).items()))


def plan_sweep(graph_path: str | os.PathLike, dataset: str, steps, modes, chips, chunk_size: int,
               limit: int | None, seed: int, dt_seconds: float | None, calibration_samples: int,
               options: dict) -> SweepPlan:
    """Check the request and build the plan; raises one SpikestackError for the first problem."""
    steps = parse_list(steps, "steps", int)
    if any(t < 1 for t in steps):
        raise OptionsError(f"steps must be positive integers, got {', '.join(map(str, steps))}")
    modes = parse_list(modes, "modes")
    if any(m not in MODES for m in modes):
        raise OptionsError(f"modes must be among {', '.join(MODES)}; got {', '.join(modes)}")
    check_count(chunk_size, "chunk_size", required=True)
    check_count(limit, "limit")
    check_count(calibration_samples, "calibration_samples", required=True)
    check_count(seed, "seed", minimum=0, required=True)
    check_positive(dt_seconds, "dt_seconds")  # NaN and inf too: they would give energies of no meaning
    graph = str(Path(graph_path).resolve())
    source = Source(graph, tuple(sorted(options.items())), _dataset(dataset), (), dt_seconds, seed)
    program = cached_program(source)  # GraphFileError, GraphValidationError, OptionsError
    specs, names = _chips(chips, program)
    if dt_seconds is None:  # the convention of `energy_report`: the lowering dt, read as seconds
        sinabs = program.options.preset == "sinabs"
        dt_seconds, dt_source = (None, "sinabs counts time in steps") if sinabs else (float(program.options.dt), "lowering dt")
    else:
        dt_source = "given"
    source = Source(graph, source.options, source.dataset, specs, dt_seconds, seed)
    x, _ = dataset_split(source.dataset, "test")  # DataError for a missing or malformed dataset
    encode_samples(program, x[:1], 1, seed, 0)  # samples fit the input?
    n = min(len(x), limit or len(x))
    chunks = tuple((start, min(start + chunk_size, n)) for start in range(0, n, chunk_size))
    configs = tuple(Config(t, m, calibrate(source, t, calibration_samples) if m == "loihi" else ())
                    for t in steps for m in modes)
    for config in configs:
        if config.mode == "loihi":  # UnsupportedError or OptionsError now, not in every task
            cached_quantised(source, config.headroom)
    return SweepPlan(source, configs, chunks, names, n, dt_source)
