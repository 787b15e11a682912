"""`deploy`: any NIR file through every stage, into one report (report.json, report.md, report.html).

Validate and lower, map on every chip, simulate in float and in Loihi fixed point (headroom from
the float run), spot-check a few samples on Lava, compare the backends' spikes, estimate energy
and latency per chip, write the report. A mode that a graph cannot use (Loihi integers for
snnTorch's delayed reset, Lava without Python 3.10, ...) is reported with its reason, not raised:
the report says what ran, what did not, and why.
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from spikestack.checks import check_count, check_positive
from spikestack.energy import Placement, list_profiles
from spikestack.errors import BackendUnavailableError, DataError, OptionsError, SpikestackError, UnsupportedError
from spikestack.ir import Counts, Program, Run, load_graph, lower_graph, resolve_options
from spikestack.ir.counts import infer_kind
from spikestack.ir.info import describe_graph, format_description
from spikestack.ir.quantise import QuantisedProgram, headroom_from_run, quantise_program
from spikestack.outputs import check_outputs, ensure_directory
from spikestack.pipeline.netx import NetxExport, netx_layers, netx_options, verify_netx
from spikestack.ir.validate import GraphSource
from spikestack.pipeline.stages import (
    dataset_directory, energy_report, graph_path, load_profiles, place_on_chips, predict, run_program,
)
from spikestack.report import (backend_entry, build_report, compare_spikes, format_summary, quantisation_entry,
                               write_deploy_report)
from spikestack.report.content import REPORT_FILES
from spikestack.report.energy import ENERGY_FILES
from spikestack.report.neurobench import neurobench_metrics

DEPLOY_BACKENDS = ("sim", "lava", "both")
DEPLOY_STEPS = 32  # time steps per dataset sample: rate-coded input needs a few tens of steps
LAVA_SAMPLES = 3  # Lava steps one sample at a time at ~1k steps/s: a spot check, not the test set
CHUNK_BYTES = 256 * 2**20  # input and recordings (v, i, s of every neuron) per simulated chunk of samples
ORDER = ("simulator float", "simulator loihi", "lava float", "lava loihi")  # rows of the report
DEPLOY_FILES = REPORT_FILES + tuple(f"energy/{name}" for name in ENERGY_FILES)  # what deploy writes in out_dir
NETX_FILE = "model.net"  # deploy --export netx: Loihi 2's lava-dl netx file, beside the report


@dataclass
class DeployInput:
    """Samples to deploy on: `batch(start, stop)` gives time-major input (T, stop - start, *shape),
    encoded on demand so a whole test set never sits in memory as spikes; labels when a dataset."""

    batch: Callable[[int, int], np.ndarray]
    count: int
    labels: np.ndarray | None
    info: dict


def deploy_input(program: Program, x: np.ndarray | None = None, dataset: str | None = None,
                 steps: int | None = None, limit: int | None = None, seed: int = 0) -> DeployInput:
    """Check an input array, or load a dataset's test set for rate coding, against the graph's input."""
    if (x is None) == (dataset is None):
        raise OptionsError("deploy needs exactly one input: an array (--input X.npy) or a dataset (--dataset NAME)")
    check_count(steps, "steps")
    check_count(limit, "limit")
    check_count(seed, "seed", minimum=0)
    if len(program.inputs) != 1:
        raise UnsupportedError(f"deploy takes graphs with one Input node; this one has {len(program.inputs)}")
    name, shape = program.inputs[0], tuple(program.op(program.inputs[0]).out_shape)
    if x is not None:
        x = np.asarray(x)[:, :limit] if np.ndim(x) >= 2 else np.asarray(x)
        if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != shape or 0 in x.shape[:2]:
            raise DataError(f"input '{name}': expected shape (T, B, {', '.join(map(str, shape))}) with T, B >= 1, "
                            f"got {x.shape}")
        if steps is not None and steps != len(x):
            raise OptionsError(f"--steps {steps} applies to datasets; the input array brings its own T = {len(x)}")
        kind = infer_kind(x)
        what = {"binary": "spikes", "counts": "spikes or spike counts"}.get(kind, "graded values")
        info = {"source": "array", "dataset": None, "steps": len(x), "samples": x.shape[1], "kind": kind,
                "description": f"the given array, {x.shape[1]} samples x {len(x)} steps of {what}"}
        return DeployInput(lambda a, b: x[:, a:b], x.shape[1], None, info)
    from spikestack.frontend.data import encode_rate_samples, load_dataset

    # digits: the split of `seed`; IDX files: `limit` cuts the (unused) training set too, saving memory
    data = load_dataset(dataset, flatten=False, **({"seed": seed} if dataset == "digits" else {"limit": limit}))
    image, flat = tuple(data.sample_shape), (int(np.prod(data.sample_shape)),)  # (1, H, W) and (H*W,)
    if shape not in (image, flat):
        raise DataError(f"input '{name}' takes samples of shape {shape}, but {data.name} samples are {image} "
                        f"(or {flat} flattened)")
    steps = DEPLOY_STEPS if steps is None else steps
    images, labels = data.x_test[:limit].reshape(-1, *shape), data.y_test[:limit]

    def batch(start: int, stop: int) -> np.ndarray:
        # Each test sample from its own stream, by index: the spikes `sweep` gives the same sample and
        # seed, whatever the chunks either cuts the test set into.
        return encode_rate_samples(images[start:stop], steps, seed, start, split="test")

    info = {"source": "dataset", "dataset": data.name, "steps": steps, "samples": len(images), "kind": "spikes",
            "description": f"{len(images)} samples of the {data.name} test set, rate-coded over {steps} steps"}
    return DeployInput(batch, len(images), labels, info)


def _concat(runs: list[Run]) -> Run:
    """Chunks of one run as one: outputs and counts of every sample, the first chunk's recordings."""
    first = runs[0]
    outputs = {k: np.concatenate([r.outputs[k] for r in runs], axis=1) for k in first.outputs}
    counts = Counts({n: {m: np.concatenate([r.counts.per_node[n][m] for r in runs], axis=1) for m in metrics}
                     for n, metrics in first.counts.per_node.items()})
    return Run(outputs, first.recordings, counts, first.backend, first.mode)


def simulate_all(program: Program | QuantisedProgram, data: DeployInput, mode: str, record: tuple[str, ...],
                 progress: bool = True) -> tuple[Run, np.ndarray, dict[str, int], np.ndarray]:
    """The simulator over every sample, in chunks whose input and recordings fit in CHUNK_BYTES.
    Returns the run (recordings of the first chunk only: the raster and the Lava check need no more),
    predictions of every sample, headroom bits from the largest v of any chunk (float) and the
    first chunk's input."""
    plain = getattr(program, "program", program)
    # per sample and step: v, i and s of every recorded neuron (up to 8 bytes each), the float32 input
    neurons = sum(int(np.prod(plain.op(n).out_shape)) for n in record)
    inputs = sum(int(np.prod(plain.op(n).out_shape)) for n in plain.inputs)
    size = max(1, CHUNK_BYTES // (data.info["steps"] * (3 * 8 * neurons + 4 * inputs)))
    runs, predictions, headroom, first_x = [], [], {}, None
    with tqdm(total=data.count, desc=f"simulator {mode}", unit="sample", disable=not progress) as bar:
        for start in range(0, data.count, size):
            x = data.batch(start, min(start + size, data.count))
            run = run_program(program, x, "sim", mode, record=record, progress=False)
            predictions.append(predict(run, plain))
            for node, bits in (headroom_from_run(plain, run) if mode == "float" else {}).items():
                headroom[node] = max(bits, headroom.get(node, 0))
            first_x = x if first_x is None else first_x
            runs.append(run if not runs else Run(run.outputs, {}, run.counts))  # later recordings: dropped now
            bar.update(x.shape[1])
    return _concat(runs), np.concatenate(predictions), headroom, first_x


def _unsupported(exc: SpikestackError) -> str:
    return f"{'unsupported' if isinstance(exc, (UnsupportedError, DataError)) else 'failed'}: {exc}"


def _quantise(program: Program, headroom: dict[str, int], data: DeployInput
              ) -> tuple[QuantisedProgram | None, dict, str]:
    """Loihi integers for the graph, or why not: (QuantisedProgram | None, report entry, run status)."""
    try:
        qprog, qreport = quantise_program(program, headroom)
    except UnsupportedError as exc:
        return None, quantisation_entry(_unsupported(exc)), _unsupported(exc)
    status = "ok" if data.info["kind"] != "graded" else \
        "unsupported: loihi mode takes spikes or spike counts; the input has graded values"
    return qprog, quantisation_entry(qreport), status


def _lava_leg(program: Program | QuantisedProgram | None, x: np.ndarray, mode: str, record: tuple[str, ...],
              status: str, labels: np.ndarray | None, strict: bool, progress: bool) -> tuple[Run | None, dict]:
    """One Lava run on the spot-check samples, or the reason it did not run. With `strict` (Lava is
    the only backend asked for) a failure is the user's error; beside the simulator it is a finding."""
    name = f"lava {mode}"
    if status != "ok":
        return None, backend_entry(name, None, status)
    plain = getattr(program, "program", program)
    try:
        run = run_program(program, x, "lava", mode, record=record, progress=progress)
    except SpikestackError as exc:
        if strict:
            raise
        return None, backend_entry(name, None, _unsupported(exc))
    return run, backend_entry(name, run, "ok", predict(run, plain), None if labels is None else labels[: x.shape[1]])


def _run_lava(program: Program, data: DeployInput, x: np.ndarray, record: tuple[str, ...], quantised: tuple | None,
              strict: bool, progress: bool) -> tuple[dict, dict, tuple]:
    """Lava float, then fixed point on x. `quantised`: `_quantise`'s result from the simulator's float
    run, or None (Lava alone) to take the headroom from Lava's own float run."""
    reason = _lava_reason()
    if reason is not None:
        if strict:
            raise BackendUnavailableError(reason)
        entries = {f"lava {m}": backend_entry(f"lava {m}", None, f"skipped: {reason}") for m in ("float", "loihi")}
        return {}, entries, quantised
    runs, entries = {}, {}
    runs["lava float"], entries["lava float"] = _lava_leg(program, x, "float", record, "ok", data.labels, strict,
                                                          progress)
    if quantised is None:
        quantised = _quantise(program, headroom_from_run(program, runs["lava float"]), data)
    qprog, _, status = quantised
    runs["lava loihi"], entries["lava loihi"] = _lava_leg(qprog, x, "loihi", record, status, data.labels, strict,
                                                          progress)
    return runs, entries, quantised


def _lava_reason() -> str | None:
    from spikestack.backends.lava import lava_unavailable_reason  # never imports Lava itself

    return lava_unavailable_reason()


def _agreement(program: Program, qprog: QuantisedProgram | None, x: np.ndarray, runs: dict, entries: dict,
               record: tuple[str, ...]) -> list[dict]:
    """The simulator against Lava on the same samples, per arithmetic. The float reference runs in
    float64, as Lava's floating_pt models do: float32 would flip spikes that sit within float32
    rounding of a threshold. Loihi mode is compared bit for bit with Lava's fixed_pt."""
    from spikestack.simulators import simulate

    pairs = []
    for lava, label in (("lava float", "simulator float (float64) vs lava float"),
                        ("lava loihi", "simulator loihi vs lava loihi")):
        if runs.get(lava) is None:
            pairs.append({"pair": label, "status": entries[lava]["status"]})
        elif lava == "lava float":
            reference = simulate(program, x, "float", record=record, dtype=np.float64)
            pairs.append(compare_spikes(reference, runs[lava], record, label=label))
        else:
            reference = simulate(qprog, x, "loihi", record=record)
            pairs.append(compare_spikes(reference, runs[lava], record, label=label, rtol=0.0, atol=0.0))
    return pairs


def _export_netx(qprog: QuantisedProgram | None, path: Path, x: np.ndarray, echo: Callable[[str], None]) -> dict:
    """Write the netx file of the integers loihi mode ran, and let lava-dl run it on x."""
    from spikestack.backends.netx import plan_layers, write_netx
    from spikestack.report import describe_netx

    if qprog is None:
        return {"status": "not written", "why": "the graph does not quantise (see Quantisation)"}
    layers = plan_layers(qprog)  # the fit on a Loihi 2 chip was checked before any work (`deploy`)
    export = NetxExport(write_netx(layers, path), qprog, layers)
    result = {"file": path.name, **verify_netx(export, x)}
    echo(f"    netx: wrote {path}; {describe_netx(result)}")
    return result


def deploy(graph: GraphSource, out_dir: str | os.PathLike, *, x: np.ndarray | None = None,
           dataset: str | None = None, steps: int | None = None, limit: int | None = None,
           chips: Sequence[str] | None = None, backend: str = "both", samples: int = LAVA_SAMPLES,
           dt_seconds: float | None = None, seed: int = 0, preset: str | None = None,
           extra_backends: Sequence[dict] = (), echo: Callable[[str], None] = print, progress: bool = True,
           input_path: str | os.PathLike | None = None, export: str | None = None, **options) -> dict:
    """Any NIR file through every stage, into report.json, report.md and report.html in out_dir.

    Validate and lower (`options` as `resolve_options`), map on each chip (each profile parsed and
    placed once; default: every shipped profile), simulate float and Loihi fixed point (headroom
    from the float run), run `samples` samples on Lava (float, and fixed when the graph quantises),
    compare the backends' spikes, estimate energy and latency on those placements (`dt_seconds` per
    step), report. Input: a time-major array
    `x`, or `dataset` ('digits', 'fashion-mnist', an IDX directory) rate-coded over `steps` steps,
    first `limit` test samples, scored with `predict`. `extra_backends`: `backend_entry` rows made
    elsewhere (the demo's torch accuracy). `input_path`: the file `x` was read from, which no report
    file may overwrite (nor any input: GRAPH, the dataset). `export="netx"`: loihi mode runs netx's
    integers, and model.net (Loihi 2, lava-dl netx) is written beside the report and run in lava-dl
    on the Lava samples where a lava-dl environment is found (`verify_netx`); a network netx cannot
    hold is refused before any work. Returns the report (what report.json holds)."""
    if backend not in DEPLOY_BACKENDS:
        raise OptionsError(f"backend must be one of {', '.join(DEPLOY_BACKENDS)}; got {backend!r}")
    for value, name in ((steps, "steps"), (limit, "limit"), (samples, "samples")):
        check_count(value, name)  # deploy_input checks steps and limit too, but only once the graph is read
    check_count(seed, "seed", minimum=0)
    check_positive(dt_seconds, "dt_seconds")
    inputs = {"GRAPH": graph_path(graph), "--input": input_path, "--dataset": dataset_directory(dataset)}
    if export not in (None, "netx"):
        raise OptionsError(f"export must be netx or None; got {export!r}")
    files = DEPLOY_FILES + ((NETX_FILE,) if export else ())
    check_outputs({"--out": out_dir}, inputs, {"--out": files})  # before any work: a refusal writes nothing
    options = netx_options(options) if export else options
    nir_graph = load_graph(graph, preset)
    program = lower_graph(nir_graph, resolve_options(nir_graph.metadata, preset=preset, **options))
    if export:
        netx_layers(quantise_program(program)[0])  # what netx (or the chip) cannot hold: refused before any work
    data = deploy_input(program, x, dataset, steps, limit, seed)
    chips = list(chips) if chips else list_profiles()
    profiles = load_profiles(chips)  # a bad profile fails before the report directory exists
    out = ensure_directory(out_dir, "--out")
    description = describe_graph(nir_graph)
    echo(f"1/5 validate: {graph_path(graph) or 'in-memory nir.NIRGraph'}\n{format_description(description)}\n    input: {data.info['description']}")
    placements = place_on_chips(program, profiles)  # priced in step 5: no second placement
    fits = {chip: [] if isinstance(placed, Placement) else placed for chip, placed in placements.items()}
    echo("2/5 map: " + ", ".join(f"{c} {'fits' if not v else f'does not fit ({len(v)} violations)'}"
                                  for c, v in fits.items()))
    neurons = tuple(op.name for op in program.neuron_ops)
    runs, entries, quantised, first_x = {}, {}, None, None
    if backend != "lava":
        echo(f"3/5 simulate: {data.count} samples, float and Loihi fixed point")
        run, predictions, headroom, first_x = simulate_all(program, data, "float", neurons, progress)
        runs["simulator float"] = run
        entries["simulator float"] = backend_entry("simulator float", run, "ok", predictions, data.labels)
        quantised = qprog, _, status = _quantise(program, headroom, data)
        entries["simulator loihi"] = backend_entry("simulator loihi", None, status)
        if status == "ok":
            run, predictions, _, _ = simulate_all(qprog, data, "loihi", neurons, progress)
            entries["simulator loihi"] = backend_entry("simulator loihi", run, "ok", predictions, data.labels)
    else:
        echo("3/5 simulate: skipped (backend 'lava')")
    wanted = min(samples, data.count)  # Lava sees the very spikes the simulator saw, where it kept them
    lava_x = first_x[:, :wanted] if first_x is not None and first_x.shape[1] >= wanted else data.batch(0, wanted)
    echo(f"4/5 Lava: {'skipped (backend sim)' if backend == 'sim' else f'{wanted} samples'}")
    if backend != "sim":
        lava_runs, lava_entries, quantised = _run_lava(program, data, lava_x, neurons, quantised, backend == "lava",
                                                       progress)
        runs.update(lava_runs)
        entries.update(lava_entries)
    qprog, quantisation, _ = quantised
    agreement = _agreement(program, qprog, lava_x, runs, entries, neurons) if backend == "both" else []
    echo(f"5/5 energy: {len(profiles)} chips, counts from the {'simulator' if backend != 'lava' else 'Lava'} float run")
    energy_run = runs["simulator float"] if backend != "lava" else runs["lava float"]
    energy = energy_report(program, energy_run, profiles, placements, out / "energy", dt=dt_seconds)
    exports = {"netx": _export_netx(qprog, out / NETX_FILE, lava_x, echo)} if export else None
    report = build_report(graph_path=graph, graph=description, options=program.options, input_info=data.info,
                          backends=list(extra_backends) + [entries[k] for k in ORDER if k in entries],
                          agreement=agreement, fits=fits, energy=energy, quantisation=quantisation, exports=exports,
                          neurobench=neurobench_metrics(program, energy_run.counts))
    files = write_deploy_report(report, out)
    echo(format_summary(report))
    echo(f"wrote {files['html']}, report.md, report.json and {out / 'energy'}/")
    return report
