"""HNSG on Fashion-MNIST (issue 7, BRIEF §6.3): masks over random weights vs dense BPTT, same network.

Both are 784-H-10 LIF MLPs (tau 2 steps, reset to zero, bias-free) trained by surrogate BPTT over T
steps with the image as a constant current; HNSG learns only a top-`keep` mask over frozen signed
Kaiming constants. Printed: test accuracy and mean firing rate (spikes per neuron per step, all
layers) of both, the gap (target: HNSG within 3 pt of dense, firing <= 0.138, the paper's 0.138 on
MNIST), and from the project's simulator on a test subset: accuracy (vs torch on the same samples)
and synaptic events / effective ops per inference. `--lava K` spot-checks K samples on Lava.

Short run:  .venv/bin/python bench/hnsg.py --limit 20000 --epochs 3 --dense-epochs 2
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
from spikestack.frontend.export import export_nir, model_options
from spikestack.frontend.methods import evaluate_hnsg, export_hnsg, materialise_supermasks, train_dense_lif, train_hnsg
from spikestack.frontend.neurons import constant_input, predict
from spikestack.frontend.train import torch_threads

from deployed import against_torch, lava_agreement  # bench/deployed.py, beside this script


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist", help="'fashion-mnist', 'digits' or an IDX directory")
    p.add_argument("--limit", type=int, default=None, help="train on the first N training images")
    p.add_argument("--test-limit", type=int, default=None, help="test on the first N test images")
    p.add_argument("--epochs", type=int, default=5, help="HNSG epochs")
    p.add_argument("--dense-epochs", type=int, default=None, help="dense BPTT epochs (default: --epochs)")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--keep", type=float, default=0.5)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="HNSG (score) learning rate")
    p.add_argument("--rate-penalty", type=float, default=0.0,
                   help="weight of the mean firing rate in the HNSG loss (0: cross-entropy alone)")
    p.add_argument("--dense-lr", type=float, default=1e-3)
    p.add_argument("--sim-samples", type=int, default=500, help="test images run through the simulator")
    p.add_argument("--lava", type=int, default=0, help="test images spot-checked on Lava (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    p.add_argument("--progress", action="store_true")
    return p.parse_args(argv)


def simulated(path: Path, model, x: np.ndarray, y: np.ndarray, steps: int) -> dict:
    """Simulator accuracy, agreement with torch and operation counts per inference on x."""
    with torch.no_grad():
        ours = predict(model.run(constant_input(torch.as_tensor(x), steps))).numpy()
    result = against_torch(path, ours, x, y, steps)
    counts = result.pop("counts")
    per = lambda metric: counts.total(metric) / len(x)  # noqa: E731
    return dict(result, synaptic_events=per("synaptic_events"), dense_macs=per("dense_macs"),
                effective_ops=per("effective_acs") + per("effective_macs"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        full = load_dataset(args.dataset)
        data = Dataset(full.x_train[:args.limit], full.y_train[:args.limit], full.x_test[:args.test_limit],
                       full.y_test[:args.test_limit], full.name, full.sample_shape, full.num_classes)
        print(f"{data.name}: {len(data.x_train)} train / {len(data.x_test)} test, T={args.steps}, hidden {args.hidden}, "
              f"keep {args.keep}, {args.threads} thread(s)", flush=True)
        common = dict(hidden=(args.hidden,), steps=args.steps, seed=args.seed, progress=args.progress)
        results, paths = {}, {}
        tmp = Path(tempfile.mkdtemp(prefix="bench_hnsg_"))
        with torch_threads(args.threads):
            for name in ("hnsg", "dense"):
                start = time.perf_counter()
                if name == "hnsg":
                    model, history = train_hnsg(data, keep=args.keep, epochs=args.epochs, lr=args.lr,
                                                rate_penalty=args.rate_penalty, **common)
                    paths[name] = export_hnsg(model, tmp / "hnsg.nir", data.sample_shape)
                    model = materialise_supermasks(model)
                else:
                    model, history = train_dense_lif(data, epochs=args.dense_epochs or args.epochs, lr=args.dense_lr, **common)
                    paths[name] = export_nir(model, tmp / "dense.nir", "bptt", data.sample_shape)
                acc, rate = evaluate_hnsg(model, data.x_test, data.y_test, args.steps)
                n = args.sim_samples
                sim = simulated(paths[name], model, data.x_test[:n], data.y_test[:n], args.steps)
                results[name] = dict(accuracy=acc, firing_rate=rate, train_s=time.perf_counter() - start,
                                     epochs=len(history.loss), sim=sim)
                print(f"{name:>5}: accuracy {acc:.4f}, firing rate {rate:.4f}, {len(history.loss)} epochs in "
                      f"{results[name]['train_s']:.0f} s; simulator on {n}: accuracy {sim['accuracy']:.4f} "
                      f"(torch {sim['torch_accuracy']:.4f}, {100 * sim['agreement']:.1f}% equal predictions), "
                      f"{sim['synaptic_events']:.0f} synaptic events, {sim['effective_ops']:.0f} effective ops, "
                      f"{sim['dense_macs']:.0f} dense MACs per inference", flush=True)
                if args.lava:
                    print(f"       Lava on {args.lava}: {lava_agreement(sim['program'], data.x_test[:args.lava], args.steps, sim['predictions'])}", flush=True)
    except SpikestackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    h, d = results["hnsg"], results["dense"]
    gap = 100 * (d["accuracy"] - h["accuracy"])
    print(f"HNSG vs dense: {gap:+.2f} pt behind (target <= 3: {'met' if gap <= 3 else 'NOT met'}); firing "
          f"{h['firing_rate']:.4f} (target <= 0.138: {'met' if h['firing_rate'] <= 0.138 else 'NOT met'}); synaptic "
          f"events {h['sim']['synaptic_events'] / d['sim']['synaptic_events']:.2f}x, effective ops "
          f"{h['sim']['effective_ops'] / d['sim']['effective_ops']:.2f}x of dense", flush=True)
    if args.json:
        for r in results.values():
            r["sim"] = {k: v for k, v in r["sim"].items() if k not in ("program", "predictions")}
        Path(args.json).write_text(json.dumps(dict(args=vars(args), results=results, gap_pt=gap), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
