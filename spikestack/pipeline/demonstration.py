"""`demo`: the main job on the embedded digits data. Train a small SNN, export it to NIR, then
deploy the exported file exactly as any user's file would be (`deploy`), on every shipped chip."""

from __future__ import annotations

import json
import os
from typing import Callable

from spikestack.checks import check_count
from spikestack.outputs import check_outputs, ensure_directory, write_text
from spikestack.pipeline.deployment import DEPLOY_FILES, NETX_FILE, deploy
from spikestack.report import backend_entry, format_summary

DEMO_STEPS = 32  # time steps per digit: rate-coded input needs a few tens of steps
DEMO_DT_SECONDS = 1e-3  # one step = 1 ms on the chips (the graph itself counts time in steps)
DEMO_LAVA_SAMPLES = 3  # Lava steps one sample at a time at ~1k steps/s: a spot check, not the test set
DEMO_FILES = ("model.nir", "demo.json", "summary.txt", *DEPLOY_FILES)


def demo(out_dir: str | os.PathLike = "out/demo", seed: int = 0, echo: Callable[[str], None] = print,
         progress: bool = True, target: str | None = None) -> dict:
    """Train (noise-based T=1 on digits), export, deploy; write demo.json and summary.txt beside the
    deploy report. Returns demo.json's content: the model path, the accuracy of every backend that
    ran the whole test set, the Lava spot check and where the reports are. `target` "netx": train
    in netx's form (frontend/targets.py) and deploy with `export="netx"`: model.net beside the report,
    verified by lava-dl where a lava-dl environment is found."""
    from spikestack.frontend.data import load_digits  # torch and the datasets load only for the demo
    from spikestack.frontend.methods import train_demo_model

    check_count(seed, "seed", minimum=0)
    files = DEMO_FILES + ((NETX_FILE,) if target else ())
    check_outputs({"--out": out_dir}, {}, {"--out": files})  # before training: a bad path fails at once
    out = ensure_directory(out_dir, "--out")
    echo(f"train: 64-256-10 IF network, noise-based T=1 training on digits{f' (for {target})' if target else ''}")
    data = load_digits(seed=seed)  # the split deploy(dataset="digits", seed=seed) tests on: no leak
    trained = train_demo_model(data, seed=seed, progress=progress, target=target)
    path = trained.export(out / "model.nir")
    echo(f"    torch test accuracy (T=1, analog input): {trained.history.test_accuracy:.3f}; exported {path}")
    echo("deploy: the exported file, read back like any user's; its metadata carries every lowering option")
    torch_row = {**backend_entry("torch (T=1, analog)", None), "samples": len(data.y_test),
                 "accuracy": trained.history.test_accuracy}
    report = deploy(path, out, dataset="digits", steps=DEMO_STEPS, seed=seed, dt_seconds=DEMO_DT_SECONDS,
                    samples=DEMO_LAVA_SAMPLES, extra_backends=[torch_row], echo=echo, progress=progress, export=target)
    test_size = report["input"]["samples"]
    # Lava ran a few samples only: its accuracy is a spot check, kept apart from the test-set figures
    whole = [b for b in report["backends"] if b["accuracy"] is not None and b["samples"] == test_size]
    spot = [b for b in report["backends"] if b["name"].startswith("lava")]
    result = {"model": str(path), "accuracy": {b["name"]: b["accuracy"] for b in whole}, "steps": DEMO_STEPS,
              "test_samples": test_size, "synaptic_events_per_sample": report["operations"]["synaptic_events"],
              "lava": {b["name"]: {k: b[k] for k in ("status", "samples", "accuracy")} for b in spot},
              "agreement": report["agreement"], "report": str(out / "report.html"),
              "energy_report": str(out / "energy" / "energy.md"), "exports": report["exports"]}
    write_text(out / "demo.json", json.dumps(result, indent=2))
    write_text(out / "summary.txt", format_summary(report) + "\n")
    echo(f"wrote {out}/model.nir, demo.json, summary.txt, report.html/.md/.json and {out}/energy/")
    return result
