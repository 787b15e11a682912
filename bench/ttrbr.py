"""TTRBR on Fashion-MNIST (issue 7, BRIEF §6.2): a deep narrow ResNet converted to IF neurons.

Trains (or loads, `--model`) the post-activation ResNet ANN (`--blocks` basic blocks, `--width`
channels, batch norm folded at conversion), then prints the SNN's test accuracy at T = `--steps`
for: max-activation thresholds, 99.9th-percentile thresholds, searched thresholds (tuned for each
T), searched + residual block restructuring (target: within 1 pt of the ANN at T=8), and that plus
the per-channel bias calibration (`calibrate_bias`), and search + restructuring + task tuning
(`TaskTuning`: thresholds and biases learned on the SNN with `--tune` labelled training images,
weights frozen; our addition, docs/hnsg_ttrbr.md). The searched networks at T=8 then run through the project's simulator
on `--sim-samples` test images: accuracy next to torch's on the same images, synaptic events per
inference. Thresholds are calibrated on the first `--calib` training images.

Short run:  .venv/bin/python bench/ttrbr.py --limit 30000 --epochs 2 --test-limit 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spikestack.errors import SpikestackError
from spikestack.frontend.data import Dataset, load_dataset
from spikestack.frontend.methods import TaskTuning, convert_ann, load_ann, snn_accuracy, train_resnet
from spikestack.frontend.neurons import constant_input, predict
from spikestack.frontend.train import accuracy, torch_threads

from deployed import against_torch, lava_agreement  # bench/deployed.py, beside this script

VARIANTS = {  # name -> (threshold kind, restructure, tuned for each T, bias calibration, task tuning)
    "max": ("max", False, False, False, False),
    "percentile": ("percentile", False, False, False, False),
    "search": ("search", False, True, False, False),
    "search+restructure": ("search", True, True, False, False),
    "search+restructure+bias": ("search", True, True, True, False),
    "search+restructure+task": ("search", True, True, False, True),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist", help="'fashion-mnist', 'digits' or an IDX directory")
    p.add_argument("--limit", type=int, default=None, help="train on the first N training images")
    p.add_argument("--test-limit", type=int, default=1000, help="test on the first N test images")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--blocks", type=int, default=20)
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16, 32])
    p.add_argument("--calib", type=int, default=256)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--tune", type=int, default=5000, help="labelled images for the task-tuned variant's SNN pass")
    p.add_argument("--model", default=None, help="convert this save_ann file instead of training")
    p.add_argument("--save", default=None, help="write the trained ANN here (save_ann format)")
    p.add_argument("--sim-samples", type=int, default=200)
    p.add_argument("--lava", type=int, default=3, help="test images also run on Lava (float); 0 skips it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    p.add_argument("--progress", action="store_true")
    return p.parse_args(argv)


def simulated(conversion, x: np.ndarray, y: np.ndarray, steps: int) -> dict:
    """The exported graph on the simulator: accuracy, agreement with torch, synaptic events per inference."""
    path = conversion.export(Path(tempfile.mkdtemp(prefix="bench_ttrbr_")) / "snn.nir")
    with torch.no_grad():
        ours = predict(conversion.snn.run(constant_input(torch.as_tensor(x), steps))).numpy()
    result = against_torch(path, ours, x, y, steps)
    counts = result.pop("counts")
    return dict(result, synaptic_events=counts.total("synaptic_events") / len(x), ops=len(result["program"].ops))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        full = load_dataset(args.dataset, flatten=False)
        data = Dataset(full.x_train[:args.limit], full.y_train[:args.limit], full.x_test[:args.test_limit],
                       full.y_test[:args.test_limit], full.name, full.sample_shape, full.num_classes)
        with torch_threads(args.threads):
            start = time.perf_counter()
            if args.model:
                model, arch = load_ann(args.model)
            else:
                model, arch, _ = train_resnet(data, args.blocks, args.width, epochs=args.epochs, seed=args.seed,
                                              out=args.save, progress=args.progress)
            ann_acc = accuracy(model, lambda m, xb: m(xb).argmax(1), data.x_test, data.y_test)
            print(f"{data.name}: {len(data.x_train)} train / {len(data.x_test)} test; ResNet {arch['blocks']} blocks, "
                  f"width {arch['width']}; ANN accuracy {ann_acc:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
            calib = data.x_train[:args.calib]
            table: dict[str, dict[int, float]] = {}
            kept = {}
            for name in args.variants:
                kind, restructure, per_t, bias, task = VARIANTS[name]
                tuning = TaskTuning(data.x_train, data.y_train, snn_samples=args.tune) if task else None
                start = time.perf_counter()
                if per_t:
                    table[name] = {}
                    for t in args.steps:
                        conversion = convert_ann(model, calib, t, kind, restructure, calibrate_bias=bias, tuning=tuning)
                        table[name][t] = snn_accuracy(conversion.snn, data.x_test, data.y_test, t)[t]
                        if t == 8:
                            kept[name] = conversion
                else:
                    conversion = convert_ann(model, calib, 8, kind, restructure)
                    table[name] = snn_accuracy(conversion.snn, data.x_test, data.y_test, args.steps)
                row = "  ".join(f"T={t}: {a:.4f}" for t, a in table[name].items())
                print(f"{name:>19}  {row}  ({time.perf_counter() - start:.0f} s)", flush=True)
            sims = {}
            n = args.sim_samples
            for name, conversion in kept.items():
                sims[name] = simulated(conversion, data.x_test[:n], data.y_test[:n], 8)
                s = sims[name]
                print(f"simulator, {name} T=8 on {n}: accuracy {s['accuracy']:.4f} (torch {s['torch_accuracy']:.4f}, "
                      f"{100 * s['agreement']:.1f}% equal predictions), {s['synaptic_events']:.0f} synaptic events "
                      f"per inference, {s['ops']} ops", flush=True)
                if args.lava:
                    print(f"  Lava (float) on {args.lava}: "
                          f"{lava_agreement(s['program'], data.x_test[:args.lava], 8, s['predictions'])}", flush=True)
    except SpikestackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name in ("search+restructure", "search+restructure+bias", "search+restructure+task"):
        best = table.get(name, {}).get(8)
        if best is not None:
            gap = 100 * (ann_acc - best)
            where = f"{gap:.2f} pt below" if gap >= 0 else f"{-gap:.2f} pt above"
            print(f"{name} at T=8: {where} the ANN (target: at most 1 pt below: {'met' if gap <= 1 else 'NOT met'})")
    if args.json:
        sims = {k: {f: v for f, v in s.items() if f not in ("program", "predictions")} for k, s in sims.items()}
        Path(args.json).write_text(json.dumps(dict(args=vars(args), ann_accuracy=ann_acc, snn_accuracy=table,
                                                   simulator=sims), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
