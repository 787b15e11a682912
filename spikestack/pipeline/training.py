"""The jobs behind `spikestack train <method>` and `spikestack convert`: train (or convert), evaluate,
write the model file, return a JSON-ready summary (`format_summary` turns it into what the CLI prints).

Each job only strings together the method's own functions in `frontend.methods`. An option passed as
None is not passed on, so the method's own default applies and lives in one place. Everything a job
can check cheaply (the output directory, the evaluation step counts) is checked before training, so
a bad option fails in a second rather than after the last epoch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Mapping, Sequence

from torch import nn

from spikestack.checks import check_count
from spikestack.errors import OptionsError
from spikestack.frontend.data import load_dataset
from spikestack.frontend.methods import (
    convert_file, evaluate_at_steps, evaluate_hnsg, evaluate_s3nn, export_hnsg, export_noise_t1, export_s3nn,
    export_spide, materialise_supermasks, snn_accuracy, train_hnsg, train_noise_t1, train_resnet, train_s3nn,
    train_spide,
)
from spikestack.frontend.methods.spide import SpideOptions
from spikestack.frontend.neurons import check_steps
from spikestack.frontend.train import History, torch_threads
from spikestack.outputs import check_outputs, ensure_directory, write_text
from spikestack.pipeline.stages import dataset_directory


def _given(**options) -> dict:
    """The options that were set: None means 'the method's default', which the method itself holds."""
    return {k: v for k, v in options.items() if v is not None}


def job_inputs(dataset: str | None = None, model: str | os.PathLike | None = None,
               calib: str | None = None) -> dict[str, str | os.PathLike | None]:
    """A job's input files and directories by option, none of which an output may overwrite."""
    return {"--dataset": dataset_directory(dataset), "MODEL": model, "--calib": dataset_directory(calib)}


def check_job_outputs(out: str | os.PathLike, json_path: str | os.PathLike | None = None, **inputs) -> None:
    """Before a job starts: refuse an --out or --json that is an input (`job_inputs(**inputs)`), that
    both name one file, or that cannot be written (a missing parent directory will be created)."""
    check_outputs({"--out": out, "--json": json_path}, job_inputs(**inputs), make_parents=True)


def prepare_output(path: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None] | None = None,
                   option: str = "--out") -> Path:
    """Refuse an output file that is one of the job's `inputs` (or cannot be written) and create its
    parent directory now, so a bad path fails before training."""
    check_outputs({option: path}, inputs or {}, make_parents=True)
    path = Path(path)
    ensure_directory(path.parent, option)
    return path


def _start_job(out: str | os.PathLike, dataset: str, seed: int) -> Path:
    """What every training job checks before it loads anything: a seed >= 0 (torch would take any
    integer, numpy's generators none below 0) and its output file (`prepare_output`)."""
    check_count(seed, "seed", minimum=0)
    return prepare_output(out, job_inputs(dataset))


def _history(history: History) -> dict:
    return {"epochs": len(history.loss), "loss": history.loss, "train_accuracy": history.train_accuracy,
            "epoch_seconds": history.epoch_seconds}


def train_s3nn_command(dataset: str, out: str | os.PathLike = "model.nir", *, arch: str = "mlp",
                       surrogate: str = "s2nn", depth: int | None = None, width: int | None = None,
                       epochs: int | None = None, lr: float | None = None, batch_size: int | None = None,
                       seed: int = 0, limit: int | None = None, threads: int | None = None,
                       progress: bool = True, target: str | None = None) -> dict:
    """`spikestack train s3nn`: a single-step (T=1) network; accuracy and spikes per sample at T=1."""
    out = _start_job(out, dataset, seed)
    data = load_dataset(dataset, flatten=arch != "conv", limit=limit)  # the convnet wants (C, H, W)
    with torch_threads(threads):
        model, history = train_s3nn(data, arch, surrogate=surrogate, seed=seed, progress=progress, target=target,
                                    **_given(depth=depth, width=width, epochs=epochs, lr=lr, batch_size=batch_size))
        acc, spikes = evaluate_s3nn(model, data.x_test, data.y_test)
    path = export_s3nn(model.cpu(), out, data.sample_shape)
    return {"method": "s3nn", "model": str(path), "dataset": data.name, "arch": arch, "surrogate": surrogate,
            "target": target,
            "seed": seed, "steps": 1, "test_samples": len(data.x_test), "test_accuracy": acc,
            "spikes_per_sample": spikes, **_history(history)}


def train_noise_t1_command(dataset: str, out: str | os.PathLike = "model.nir", *, noise: str = "gaussian",
                           noise_mean: float | None = None, noise_std: float | None = None,
                           hidden: Sequence[int] | None = None, eval_steps: Sequence[int] = (1, 4, 8, 16, 32),
                           epochs: int | None = None, lr: float | None = None, batch_size: int | None = None,
                           seed: int = 0, limit: int | None = None, threads: int | None = None,
                           progress: bool = True, target: str | None = None) -> dict:
    """`spikestack train noise-t1`: train at T=1 with threshold noise; the converted accuracy at each T."""
    steps = [check_steps(t) for t in eval_steps]
    out = _start_job(out, dataset, seed)
    data = load_dataset(dataset, limit=limit)
    with torch_threads(threads):
        model, history = train_noise_t1(data, noise=noise, seed=seed, progress=progress, target=target,
                                        **_given(noise_mean=noise_mean, noise_std=noise_std, epochs=epochs, lr=lr,
                                                 batch_size=batch_size, hidden=None if hidden is None else tuple(hidden)))
        by_steps = {str(t): evaluate_at_steps(model, data.x_test, data.y_test, t) for t in steps}
    path = export_noise_t1(model.cpu(), out, data.sample_shape)
    return {"method": "noise_t1", "model": str(path), "dataset": data.name, "noise": noise, "seed": seed,
            "target": target,
            "hidden": [m.out_features for m in model if isinstance(m, nn.Linear)][:-1],
            "test_samples": len(data.x_test), "test_accuracy": history.test_accuracy,
            "accuracy_at_steps": by_steps, **_history(history)}


def train_hnsg_command(dataset: str, out: str | os.PathLike = "model.nir", *, keep: float = 0.5,
                       steps: int = 8, hidden: Sequence[int] | None = None, sign_term: bool = True,
                       epochs: int | None = None, lr: float | None = None, batch_size: int | None = None,
                       seed: int = 0, limit: int | None = None, threads: int | None = None,
                       progress: bool = True, target: str | None = None, rate_penalty: float | None = None) -> dict:
    """`spikestack train hnsg`: learn masks over frozen random weights; accuracy and mean firing rate at T=steps."""
    check_steps(steps)
    if not 0.0 < keep <= 1.0:  # the layers check it too, but only once the dataset is loaded
        raise OptionsError(f"keep is the fraction of weights kept per layer, in (0, 1]; got {keep!r}")
    out = _start_job(out, dataset, seed)
    data = load_dataset(dataset, limit=limit)
    with torch_threads(threads):
        model, history = train_hnsg(data, keep=keep, steps=steps, sign_term=sign_term, seed=seed, progress=progress,
                                    target=target,
                                    **_given(epochs=epochs, lr=lr, batch_size=batch_size, rate_penalty=rate_penalty,
                                             hidden=None if hidden is None else tuple(hidden)))
        # Evaluate what is written: plain masked Linear layers, dropped weights exactly zero.
        acc, rate = evaluate_hnsg(materialise_supermasks(model), data.x_test, data.y_test, steps)
    path = export_hnsg(model.cpu(), out, data.sample_shape)
    return {"method": "hnsg", "model": str(path), "dataset": data.name, "keep": keep, "steps": steps, "seed": seed,
            "target": target,
            "test_samples": len(data.x_test), "test_accuracy": acc, "firing_rate": rate, **_history(history)}


def train_spide_command(dataset: str, out: str | os.PathLike = "model.nir", *,
                        hidden: int | Sequence[int] | None = None, steps: int | None = None,
                        backward_steps: int | None = None, backward: str | None = None,
                        loss_scale: float | str | None = None, epochs: int | None = None, lr: float | None = None,
                        batch_size: int | None = None, seed: int = 0, limit: int | None = None,
                        threads: int | None = None, progress: bool = True, schedule: str | None = None) -> dict:
    """`spikestack train spide`: a feedback SNN; accuracy at T=steps and the spike backward's cost."""
    out = _start_job(out, dataset, seed)
    # SpideOptions holds the method's defaults (and checks), so the export and summary see the same T.
    options = SpideOptions(**_given(steps=steps, backward=backward, backward_steps=backward_steps,
                                    loss_scale=loss_scale))
    data = load_dataset(dataset, limit=limit)
    with torch_threads(threads):
        model, history = train_spide(data, steps=options.steps, backward=options.backward,
                                     backward_steps=options.backward_steps, loss_scale=options.loss_scale,
                                     seed=seed, progress=progress,
                                     **_given(hidden=hidden, epochs=epochs, lr=lr, batch_size=batch_size,
                                              schedule=schedule))
    path = export_spide(model, out, options.steps)
    return {"method": "spide", "model": str(path), "dataset": data.name, "seed": seed,
            **dataclasses.asdict(options), "hidden": list(model.sizes), "test_samples": len(data.x_test),
            "test_accuracy": history.test_accuracy,
            "backward_per_sample": model.stats.per_sample() if options.backward == "spide" else None,
            **_history(history)}


def train_resnet_command(dataset: str, out: str | os.PathLike = "ann.pt", *, blocks: int | None = None,
                         width: int | None = None, stages: int | None = None, epochs: int | None = None,
                         lr: float | None = None, batch_size: int | None = None, seed: int = 0,
                         limit: int | None = None, threads: int | None = None, progress: bool = True) -> dict:
    """`spikestack train resnet`: the ReLU ResNet ANN for `convert`, written weights-only to `out` (.pt)."""
    out = _start_job(out, dataset, seed)
    data = load_dataset(dataset, flatten=False, limit=limit)
    with torch_threads(threads):
        _, arch, history = train_resnet(data, seed=seed, out=out, progress=progress,
                                        **_given(blocks=blocks, width=width, stages=stages, epochs=epochs, lr=lr,
                                                 batch_size=batch_size))
    return {"method": "resnet", "model": str(out), "dataset": data.name, "arch": arch, "seed": seed,
            "test_samples": len(data.x_test), "test_accuracy": history.test_accuracy, **_history(history)}


def convert_command(model: str | os.PathLike, calib: str, out: str | os.PathLike = "model.nir", *,
                    steps: int = 8, threshold: str = "search", restructure: bool = True, calib_size: int = 256,
                    test_limit: int = 1000, threads: int | None = None, calibrate_bias: bool = False,
                    tune: int = 0) -> dict:
    """`spikestack convert MODEL.pt`: ANN to IF network, thresholds tuned on `calib`'s first training
    images; the SNN's accuracy at T=steps on the first `test_limit` test images (0: not measured)."""
    check_steps(steps)
    check_count(test_limit, "test_limit", minimum=0)  # 0: not measured
    check_count(calib_size, "calib_size")
    check_count(tune, "tune", minimum=0)  # labelled images for task tuning; 0: off
    out = prepare_output(out, job_inputs(model=model, calib=calib))
    data = load_dataset(calib, flatten=False)
    with torch_threads(threads):
        conversion = convert_file(model, data, steps, threshold, restructure, calib_size, out=out,
                                  calibrate_bias=calibrate_bias, tune=tune)
        x, y = data.x_test[:test_limit], data.y_test[:test_limit]
        acc = snn_accuracy(conversion.snn, x, y, steps)[steps] if test_limit else None
    return {"method": "ttrbr", "model": str(out), "source": str(model), "dataset": data.name, "steps": steps,
            "threshold": threshold, "restructured": conversion.restructured, "bias_calibrated": calibrate_bias,
            "task_tuned_samples": tune, "nodes": len(conversion.graph.nodes),
            "thresholds": conversion.thresholds, "test_samples": len(x) if test_limit else 0, "test_accuracy": acc}


def save_summary(summary: dict, path: str | os.PathLike) -> Path:
    """Write a job's summary as JSON."""
    return write_text(prepare_output(path, option="--json"), json.dumps(summary, indent=2) + "\n")


def _percent(value: float | None) -> str:
    return "not measured" if value is None else f"{100 * value:.2f}%"


_HEADLINES = {  # method -> the summary's first line(s); every summary then names the file it wrote
    "s3nn": lambda s: (f"S3NN {s['arch']} ({s['surrogate']} surrogate), T=1: test accuracy {_percent(s['test_accuracy'])}, "
                       f"{s['spikes_per_sample']:.1f} spikes per sample"),
    "noise_t1": lambda s: "\n".join([f"noise-T1 ({s['noise']} noise), trained at T=1; converted test accuracy:"]
                                    + [f"  T={t:<4} {_percent(a)}" for t, a in s["accuracy_at_steps"].items()]),
    "hnsg": lambda s: (f"HNSG keep={s['keep']}, T={s['steps']}: test accuracy {_percent(s['test_accuracy'])}, "
                       f"mean firing rate {s['firing_rate']:.4f} spikes per neuron per step"),
    "spide": lambda s: (f"SPIDE ({s['backward']} backward, T={s['steps']}, T_b={s['backward_steps']}, hidden "
                        f"{s['hidden']}): test accuracy {_percent(s['test_accuracy'])}"
                        + (f", {s['backward_per_sample']['spikes']:.0f} ternary backward spikes per training sample"
                           if s.get("backward_per_sample") else "")),
    "resnet": lambda s: (f"ResNet ANN ({s['arch']['blocks']} blocks, width {s['arch']['width']}): "
                         f"test accuracy {_percent(s['test_accuracy'])}"),
    "ttrbr": lambda s: (f"converted {s['source']} ({s['threshold']} thresholds, "
                        f"{'restructured' if s['restructured'] else 'not restructured'}, "
                        f"{'bias-calibrated, ' if s.get('bias_calibrated') else ''}"
                        f"{'task-tuned on %d images, ' % s['task_tuned_samples'] if s.get('task_tuned_samples') else ''}"
                        f"{s['nodes']} nodes), "
                        f"T={s['steps']}: SNN test accuracy {_percent(s['test_accuracy'])}"
                        + (f" on the first {s['test_samples']} test samples" if s["test_samples"] else "")),
}


def format_summary(summary: dict) -> str:
    """What `spikestack train`/`convert` print: accuracy, spikes or firing rate where relevant, the file."""
    return f"{_HEADLINES[summary['method']](summary)}\nwrote {summary['model']}"
