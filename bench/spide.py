"""SPIDE on Fashion-MNIST (issue 8): the claims of BRIEF §6.5, measured in one run.

1. Accuracy of a feedback MLP (784 -> 400 IF with recurrent W -> 10 IF) at T = 30, trained with the
   spike-based backward (ternary neurons, T_b = 100) and with the exact implicit gradient (linear
   solve). Target >= 88% for the spike backward; IDE's F400 at T = 5: 90.07% (published).
2. Epoch times of both backward passes, same batches.
3. Gradient fidelity on the trained network: cosine of the weight gradient, ternary vs exact, on
   one batch of test samples at T_b = 10 / 30 / 100 (paper: 0.976 / 0.998 / 0.9998).
4. Operations per inference: synaptic events of the forward pass from the simulator's Counts (the
   exported NIR graph, run for T steps), and of the training backward pass (ternary spikes x
   fan-out), the paper's energy argument.

Short check:  .venv/bin/python bench/spide.py --epochs 1 --limit 2000
Full run:     .venv/bin/python bench/spide.py --epochs 12 --exact-epochs 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from spikestack.errors import SpikestackError
from spikestack.frontend.data import load_dataset
from spikestack.frontend.methods.spide import export_spide, spide_predict, train_spide
from spikestack.frontend.methods.spide_backward import (
    V_SCALE, exact_beta, implicit_gradients, saturation_mask, spike_beta,
)
from spikestack.frontend.train import torch_threads

from deployed import against_torch, lava_agreement, loihi_agreement  # bench/deployed.py, beside this script

TARGET = 0.88  # issue 8's floor for the spike backward
PUBLISHED = {"IDE F400, T=5 (Fashion-MNIST)": 0.9007, "fidelity T_b=10/30/100": (0.976, 0.998, 0.9998)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist", help="'fashion-mnist', 'digits' or an IDX directory")
    p.add_argument("--limit", type=int, default=None, help="keep the first N train and N test samples")
    p.add_argument("--epochs", type=int, default=5, help="epochs of the spike backward")
    p.add_argument("--exact-epochs", type=int, default=None,
                   help="epochs of the exact backward (default: --epochs; 0 skips it)")
    p.add_argument("--hidden", type=int, nargs="+", default=[400])
    p.add_argument("--steps", type=int, default=30, help="forward T")
    p.add_argument("--backward-steps", type=int, default=100, help="T_b of the ternary neurons")
    p.add_argument("--loss-scale", type=lambda v: v if v == "auto" else float(v), default="auto",
                   help="per-sample loss scale of the spike backward, or 'auto' (dynamic)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", choices=("constant", "cosine"), default="cosine",
                   help="learning rate: constant, or cosine annealing to 0 over the run")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sim-samples", type=int, default=500, help="test samples run through the exported graph")
    p.add_argument("--lava", type=int, default=3, help="of those, samples also run on Lava (float); 0 skips it")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument("--progress", action="store_true", help="show tqdm progress bars")
    return p.parse_args(argv)


def train(data, args, backward: str, epochs: int) -> tuple[torch.nn.Module, dict]:
    model, history = train_spide(data, hidden=tuple(args.hidden), steps=args.steps, backward_steps=args.backward_steps,
                                 backward=backward, epochs=epochs, lr=args.lr, seed=args.seed,
                                 loss_scale=args.loss_scale, batch_size=args.batch_size, progress=args.progress,
                                 schedule=args.schedule)
    times = history.epoch_seconds
    result = {"epochs": epochs, "test_accuracy": history.test_accuracy, "train_accuracy": history.train_accuracy,
              "loss": history.loss, "epoch_seconds": times,
              "median_epoch_s": statistics.median(times[1:] or times)}
    if backward == "spide":
        result["backward_per_training_sample"] = model.stats.per_sample()
    return model, result


def fidelity(model, data, args) -> dict[str, float]:
    """Cosine of dW (all hidden-to-hidden weights) and dF, ternary vs exact, on one test batch."""
    x = torch.as_tensor(data.x_test[: args.batch_size])
    y = torch.as_tensor(data.y_test[: args.batch_size])
    with torch.no_grad():
        rates, _ = model.run(x, args.steps)
    a = rates.clone().requires_grad_(True)
    last = model.block(len(model.sizes) - 1)
    F.cross_entropy(model.readout(a[:, last]), y).backward()
    scale = model.stats.scale if args.loss_scale == "auto" else args.loss_scale
    g = a.grad * scale * len(x)  # as the training backward scaled it last
    weight, mask = model.hidden_weight(), saturation_mask(rates)
    exact = implicit_gradients(exact_beta(weight, mask, g, V_SCALE), mask, rates, V_SCALE)
    exact_vec = torch.cat([exact.weight.flatten(), (exact.delta.T @ x).flatten()])
    result = {}
    for steps in (10, 30, 100):
        est = implicit_gradients(spike_beta(weight, mask, g, V_SCALE, steps).beta, mask, rates, V_SCALE)
        vec = torch.cat([est.weight.flatten(), (est.delta.T @ x).flatten()])
        result[f"T_b={steps}"] = float(vec @ exact_vec / (vec.norm() * exact_vec.norm()))
    return result


def deploy(model, data, args) -> dict:
    """Export, read back, lower, simulate T steps (float): agreement with torch and counts."""
    x = data.x_test[: args.sim_samples]
    y = data.y_test[: len(x)]
    with torch.no_grad():
        want = spide_predict(model, torch.as_tensor(x), args.steps).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        sim = against_torch(export_spide(model, Path(tmp) / "model.nir", args.steps), want, x, y, args.steps)
    program, ours, counts = sim["program"], sim["predictions"], sim["counts"]
    per_node = {op.name: counts.per_node[op.name]["synaptic_events"].sum(axis=0).mean()
                for op in program.ops if counts.per_node[op.name]["synaptic_events"].any()}
    loihi = loihi_agreement(program, x, args.steps, data.x_train[: args.sim_samples], ours)
    lava = lava_agreement(program, x[: args.lava], args.steps, ours) if args.lava else "skipped"
    loihi_text = ("skipped (graded pixel currents; Loihi takes spike counts: tests/frontend/test_spide.py "
                  "runs loihi mode on integer digits)" if loihi is None else
                  f"agreement with float {loihi['agreement_with_float']:.3f}, "
                  f"accuracy {float((loihi['predictions'] == y).mean()):.4f}")
    return {"samples": len(x), "agreement_with_torch": sim["agreement"], "loihi": loihi_text, "lava": lava,
            "simulator_accuracy": sim["accuracy"],
            "synaptic_events_per_inference": float(counts.per_sample("synaptic_events").mean()),
            "synaptic_events_per_node": {k: float(v) for k, v in per_node.items()},
            "spikes_per_inference": float(counts.per_sample("spikes_out").mean())}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exact_epochs = args.epochs if args.exact_epochs is None else args.exact_epochs
    try:
        data = load_dataset(args.dataset, limit=args.limit)
        with torch_threads(args.threads):
            model, spike = train(data, args, "spide", args.epochs)
            results = {"config": vars(args), "spide": spike}
            print(f"spike backward: {spike['test_accuracy']:.4f} after {args.epochs} epochs "
                  f"(target {TARGET}, ratio {spike['test_accuracy'] / TARGET:.3f}; "
                  f"IDE F400 T=5 published 0.9007), median epoch {spike['median_epoch_s']:.1f} s", flush=True)
            results["fidelity_on_trained_model"] = fid = fidelity(model, data, args)
            print("gradient fidelity on the trained network (cosine, ternary vs exact): "
                  + ", ".join(f"{k} {v:.5f}" for k, v in fid.items()) + "  (paper 0.976 / 0.998 / 0.9998)",
                  flush=True)
            results["deployed"] = dep = deploy(model, data, args)
            back = spike["backward_per_training_sample"]
            print(f"exported graph on the simulator ({dep['samples']} test samples): agreement with torch "
                  f"{dep['agreement_with_torch']:.3f}, accuracy {dep['simulator_accuracy']:.4f}; loihi mode: "
                  f"{dep['loihi']}; Lava float on {args.lava}: {dep['lava']}", flush=True)
            print(f"synaptic events per inference (forward, T={args.steps}): "
                  f"{dep['synaptic_events_per_inference']:,.0f} "
                  f"({', '.join(f'{k} {v:,.0f}' for k, v in dep['synaptic_events_per_node'].items())}); "
                  f"per training sample (backward, T_b={args.backward_steps}): {back['synaptic_events']:,.0f} "
                  f"from {back['spikes']:,.0f} ternary spikes, {back['clipped_fraction']:.2e} of beta clipped",
                  flush=True)
            if exact_epochs:
                _, exact = train(data, args, "exact", exact_epochs)
                results["exact"] = exact
                print(f"exact backward: {exact['test_accuracy']:.4f} after {exact_epochs} epochs, median epoch "
                      f"{exact['median_epoch_s']:.1f} s (spike backward {spike['median_epoch_s']:.1f} s, ratio "
                      f"{exact['median_epoch_s'] / spike['median_epoch_s']:.2f})", flush=True)
    except SpikestackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
