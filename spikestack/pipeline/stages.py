"""The single-stage jobs behind `spikestack info`, `run`, `map`, `energy` and `chips`, and `predict`.

Each reads a file, calls one stage (or two in a fixed order) and returns plain data; the CLI prints it.
The energy steps (`load_profiles`, `place_on_chips`, `energy_report`) are shared with `deploy`: each
profile is parsed once and placed once, and that one placement is priced and reported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import nir
import numpy as np

from spikestack.checks import check_number, check_positive
from spikestack.energy import (
    Budget, ChipProfile, FitError, Placement, estimate, list_profiles, load_profile, map_to_cores,
)
from spikestack.energy.budget import steps_and_batch
from spikestack.errors import OptionsError
from spikestack.ir import Program, Run, load_graph, lower_graph, resolve_options
from spikestack.ir.validate import GraphSource
from spikestack.ir.fixed import WEIGHT_BITS
from spikestack.ir.info import describe_graph
from spikestack.outputs import check_outputs, write_atomically, write_text
from spikestack.pipeline.inputs import check_finite
from spikestack.report.energy import ENERGY_FILES, write_energy_report
from spikestack.report.neurobench import neurobench_metrics

BACKENDS = ("sim", "lava")
STATS_FORMATS = ("spikestack", "neurobench")  # --stats: our counts per node and step, or NeuroBench's metrics
NEUROBENCH_FILE = "neurobench.json"  # what `energy --format neurobench` adds to its report directory
# One name per arithmetic on both backends: "float", and "loihi" for Loihi's fixed point. "fixed" (the
# Lava backend's former name for it) is accepted as an alias of "loihi" on the CLI and in this API.
MODE_NAMES = {"sim": {"float": "float", "loihi": "loihi", "fixed": "loihi"},
              "lava": {"float": "float", "loihi": "loihi", "fixed": "loihi"}}


def graph_path(graph: GraphSource) -> str | os.PathLike | None:
    """The file a graph argument names (an input no output may overwrite), None for a `nir.NIRGraph`."""
    return None if isinstance(graph, nir.NIRGraph) else graph


def info(graph: GraphSource, preset: str | None = None) -> dict:
    """Read, validate and describe a `.nir` file or a `nir.NIRGraph` (what `spikestack info` prints)."""
    return describe_graph(load_graph(graph, preset))


def load_program(graph: GraphSource, preset: str | None = None, **options) -> Program:
    """Read (or take) a graph, validate and lower it with explicit options > preset > graph metadata."""
    graph = load_graph(graph, preset)
    return lower_graph(graph, resolve_options(graph.metadata, preset=preset, **options))


def run(graph: GraphSource, x: np.ndarray, preset: str | None = None, backend: str = "sim", mode: str = "float",
        record: tuple[str, ...] = (), **options) -> Run:
    """`spikestack run` from Python: a `.nir` file or a `nir.NIRGraph` (a peer exporter's, in memory)
    on time-major input x (T, B, *shape); `record` names nodes whose state the Run keeps."""
    return run_program(load_program(graph, preset, **options), x, backend, mode, record=tuple(record), progress=False)


def export_for(graph: GraphSource, target: str, out: str | os.PathLike | None = None, preset: str | None = None,
               **options) -> nir.NIRGraph:
    """A graph (ours, or any NIR with the options that lower it) rewritten in `target`'s conventions
    (`ir.targets`), so that its own importer and runtime spike as our simulator does; written to
    `out` when given (atomically; never over the graph it was read from). Returns the `nir.NIRGraph`."""
    from spikestack.ir.io import write_nir
    from spikestack.ir.targets import write_for

    if out is not None:
        check_outputs({"--out": out}, {"GRAPH": graph_path(graph)})
    built = load_graph(graph, preset)
    program = lower_graph(built, resolve_options(built.metadata, preset=preset, **options))
    written = write_for(built, program, target)
    if out is not None:
        write_nir(written, out)
    return written


def run_program(program, x: np.ndarray, backend: str = "sim", mode: str = "float",
                record: tuple[str, ...] = (), progress: bool = True) -> Run:
    """Run a Program (or a QuantisedProgram, fixed point only) on the simulator or on Lava,
    with one input/output contract."""
    if backend not in BACKENDS:
        raise OptionsError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if mode not in MODE_NAMES[backend]:
        raise OptionsError(f"mode must be one of float, loihi (fixed); got {mode!r}")
    mode = MODE_NAMES[backend][mode]
    check_finite(x)  # NaN compares false with every threshold: all-zero spikes, on both backends
    if backend == "lava":
        from spikestack.backends.lava import run_lava

        return run_lava(program, x, mode=mode, record=record, progress=progress)
    from spikestack.simulators import simulate

    return simulate(program, x, mode=mode, record=record)


def dataset_directory(dataset: str | None) -> str | None:
    """The directory a --dataset argument reads, None for the built-in digits: an input that no
    output may be written into."""
    from spikestack.frontend.data import DEFAULT_FASHION_MNIST

    return None if dataset in (None, "digits") else DEFAULT_FASHION_MNIST if dataset == "fashion-mnist" else dataset


def _known_format(stats_format: str) -> None:
    if stats_format not in STATS_FORMATS:
        raise OptionsError(f"format must be one of {', '.join(STATS_FORMATS)}; got {stats_format!r}")


def check_stats_format(stats_format: str, stats: str | os.PathLike | None) -> None:
    """A known --format, and a file to write it to when it is not the default."""
    _known_format(stats_format)
    if stats is None and stats_format != STATS_FORMATS[0]:
        raise OptionsError(f"--format {stats_format} formats the --stats file: give --stats FILE.json")


def check_run_paths(graph: str | os.PathLike, x: str | os.PathLike | None, out: str | os.PathLike,
                    stats: str | os.PathLike | None = None, stats_format: str = "spikestack") -> None:
    """Before `run` starts: refuse an --out or --stats that is GRAPH or --input, or cannot be written,
    and a --format that is unknown or has no --stats to format."""
    check_stats_format(stats_format, stats)
    check_outputs({"--out": out, "--stats": stats}, {"GRAPH": graph, "--input": x})


def run_statistics(run: Run, program: Program | None = None, stats_format: str = "spikestack") -> dict:
    """The --stats JSON of a run: our counts per node and step ("spikestack"), or NeuroBench's metric
    dict ("neurobench", `report.neurobench`, which needs the Program the run ran)."""
    _known_format(stats_format)
    if stats_format == "neurobench":
        if program is None:
            raise OptionsError("--format neurobench needs the Program the run ran")
        return neurobench_metrics(program, run.counts)
    return {"backend": run.backend, "mode": run.mode, "counts": run.counts.to_dict()}


def save_run(run: Run, out: str | os.PathLike, stats: str | os.PathLike | None = None,
             program: Program | None = None, stats_format: str = "spikestack") -> None:
    """Outputs and recordings to the `.npz` file `out`, exactly that name (keys `<node>` and
    `<node>.<var>`), counts to JSON (`run_statistics`: ours, or NeuroBench's metrics of `program`'s
    run); each file written atomically."""
    check_stats_format(stats_format, stats)
    check_outputs({"--out": out, "--stats": stats}, {})
    arrays = dict(run.outputs)
    arrays.update({f"{node}.{var}": a for node, rec in run.recordings.items() for var, a in rec.items()})

    def savez(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: numpy would append ".npz" to a name without it
            np.savez_compressed(f, **arrays)

    write_atomically(out, savez)
    if stats is not None and (run.counts is not None or stats_format == "neurobench"):
        write_text(stats, json.dumps(run_statistics(run, program, stats_format), indent=1))


def map_graph(path: GraphSource, chip: str, preset: str | None = None, weight_bits: int | None = None, **options) -> dict:
    """Place a graph on a chip's cores; a `ChipError` names the layer and limit that do not fit.
    `weight_bits`: the quantised width, 1 to the fixed-point leaf's WEIGHT_BITS (what `quantise_weights`
    accepts); default: the chip's."""
    check_number(weight_bits, "weight_bits", integer=True, at_least=1, at_most=WEIGHT_BITS)
    program = load_program(path, preset, **options)
    return map_to_cores(program, load_profile(chip), weight_bits).to_dict()


def load_profiles(chips: Sequence[str | os.PathLike]) -> list[ChipProfile]:
    """Each chip's profile (a shipped name or a YAML path), parsed and validated once: callers load
    them before any work, so that a bad profile fails first."""
    return [load_profile(chip) for chip in chips]


def place_on_chips(program: Program, profiles: Sequence[ChipProfile],
                   weight_bits: int | None = None) -> dict[str, Placement | list[str]]:
    """Chip name -> its Placement, or every violation (the list `check_fit` gives) when the network
    does not fit: one placement per chip, which the estimate and the report both use."""
    placements: dict[str, Placement | list[str]] = {}
    for profile in profiles:
        try:
            placements[profile.name] = map_to_cores(program, profile, weight_bits)
        except FitError as exc:  # does not fit: list every violation instead of a number
            placements[profile.name] = exc.violations
    return placements


def seconds_per_step(program: Program, dt: float | None = None) -> tuple[float | None, str]:
    """Seconds per step and where they come from: `dt` when given, else the lowering options' dt,
    unless the graph counts time in steps (Sinabs)."""
    if dt is not None:
        return dt, "given"
    if program.options.preset == "sinabs":
        return None, "the sinabs preset counts time in steps (dt = 1 step): no seconds per step known"
    return float(program.options.dt), "dt of the lowering options, read as seconds"


def energy_report(program: Program, run: Run, profiles: Sequence[ChipProfile],
                  placements: dict[str, Placement | list[str]], out_dir: str | os.PathLike,
                  dt: float | None = None) -> dict:
    """Estimate the run's counts on each placed chip and write the energy report (energy.json,
    energy.md, plots) into out_dir; returns its JSON content. `placements`: `place_on_chips`'s result
    for `profiles`; `dt`: seconds per step (default: `seconds_per_step`)."""
    check_positive(dt, "dt (seconds per step)")  # 0, negative, NaN or inf: energies and latencies of no meaning
    if run.counts is None or not run.counts.per_node:
        raise OptionsError("the run has no counts: simulate with count=True before an energy report")
    seconds, source = seconds_per_step(program, dt)
    by_name = {profile.name: profile for profile in profiles}
    spikes = {node: rec["s"] for node, rec in run.recordings.items() if "s" in rec}
    # recorded spikes per neuron give each core of a layer its own share of the layer's spikes
    activity = {node: np.asarray(s).sum(axis=(0, 1)).reshape(-1) for node, s in spikes.items()}
    budgets: dict[str, Budget | list[str]] = {
        chip: estimate(run.counts, placed, by_name[chip], seconds, activity) if isinstance(placed, Placement)
        else placed for chip, placed in placements.items()}
    steps, samples = steps_and_batch(run.counts)
    meta = {"dt_seconds": seconds, "dt_source": source, "steps": steps, "samples": samples}
    return write_energy_report(budgets, out_dir, run.counts, spikes=spikes or None, meta=meta)


def energy(path: GraphSource, x: np.ndarray, chips: list[str], out_dir: str | os.PathLike,
           preset: str | None = None, mode: str = "float", dt_seconds: float | None = None,
           input_path: str | os.PathLike | None = None, stats_format: str = "spikestack", **options) -> dict:
    """Simulate with counting, then write per-chip energy/latency reports (JSON, Markdown, plots).
    `input_path`: the file `x` was read from, which no report file may overwrite. `stats_format`
    "neurobench": also write the run's NeuroBench metrics (`run_statistics`) as neurobench.json."""
    check_positive(dt_seconds, "dt_seconds")  # energy_report checks it too, but only after the simulation
    _known_format(stats_format)
    files = ENERGY_FILES + ((NEUROBENCH_FILE,) if stats_format == "neurobench" else ())
    check_outputs({"--out": out_dir}, {"GRAPH": graph_path(path), "--input": input_path}, {"--out": files})
    profiles = load_profiles(chips)  # a bad profile fails now, not after the simulation
    program = load_program(path, preset, **options)
    placements = place_on_chips(program, profiles)
    run = run_program(program, x, "sim", mode, record=tuple(op.name for op in program.neuron_ops))
    report = energy_report(program, run, profiles, placements, out_dir, dt=dt_seconds)
    if stats_format == "neurobench":
        write_text(Path(out_dir) / NEUROBENCH_FILE, json.dumps(run_statistics(run, program, stats_format), indent=1))
    return report


def chips() -> list[dict]:
    """The shipped chip profiles, one summary row each (what `spikestack chips` prints)."""
    rows = []
    for name in list_profiles():
        profile = load_profile(name)
        rows.append({"name": profile.name, "kind": profile.kind, "estimated": profile.estimated,
                     "description": " ".join(profile.description.split())})
    return rows


def predict(run: Run, program: Program) -> np.ndarray:
    """Class = most output spikes; ties go to the higher final membrane of the output neurons, then to
    the lower index: the rule of `frontend.neurons.predict`, so deployed and torch decisions agree."""
    counts = next(iter(run.outputs.values())).sum(axis=0)
    last = program.neuron_ops[-1].name
    v = run.recordings.get(last, {}).get("v")
    if v is None:
        return counts.argmax(axis=-1)
    # Reset-to-zero neurons that spiked last step all sit at v = 0: full ties are common, and argmax
    # takes the first of them, as torch does.
    tied = counts == counts.max(axis=-1, keepdims=True)
    return np.where(tied, v[-1], -np.inf).argmax(axis=-1)
