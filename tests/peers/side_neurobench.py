"""NeuroBench 2.3.0's side of the NeuroBench metrics parity (issue 21): its own Benchmark and metric
classes on snnTorch models, never our numbers.

Runs in `.venv-neurobench` (environments.py: NeuroBench alone on `.venv`'s torch and snnTorch) and
never imports spikestack. Contract:

    side_neurobench.py reference OUTDIR [--steps T] [--batch B]
        For each kind K (mlp, conv): OUTDIR/K.nir written by snnTorch's own exporter, OUTDIR/K.npz
        holding `input` (T, B, *shape), and OUTDIR/K.json: what NeuroBench's `Benchmark.run()` returned
        for the same snnTorch model on that input with the metric classes Footprint,
        ConnectionSparsity, ActivationSparsity and SynapticOperations.

The models are side_snntorch.py's (its `leaky_mlp` and `conv`: Leaky neurons with per-neuron beta and
threshold, subtract reset, biases; the conv net average-pools, so its Linear receives graded values),
with a share of each layer's weights pruned to zero so that connection sparsity is not 0. The MLP's
input is graded (0.5 or 1 where the seed puts an event) so that its first layer counts MACs; the conv
net's is 0/1 spikes. NeuroBench runs one sample per batch: it tells ACs from MACs per layer call
(one step of the whole batch), we per sample and step, and the two agree at batch size 1.
"""

from __future__ import annotations

import sys

sys.modules["spikestack"] = None  # never import our package here
sys.modules["samna"] = None

import copy  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import nir  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.static import ConnectionSparsity, Footprint  # noqa: E402
from neurobench.metrics.workload import ActivationSparsity, SynapticOperations  # noqa: E402
from neurobench.models import SNNTorchModel  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from side_snntorch import build, export  # noqa: E402  (same directory: snnTorch's models and exporter)

KINDS = {"mlp": "leaky_mlp", "conv": "conv"}  # ours -> side_snntorch's kind
PRUNE = 0.3  # share of each layer's weights set to zero
METRICS = [[Footprint, ConnectionSparsity], [ActivationSparsity, SynapticOperations]]


def _weights(net: torch.nn.Module, scales: dict[str, float], gen: torch.Generator) -> None:
    """Seeded weights N(0, scale^2) with PRUNE of them zeroed, biases N(0, 0.05^2)."""
    with torch.no_grad():
        for name, scale in scales.items():
            layer = net.get_submodule(name)
            kept = (torch.rand(layer.weight.shape, generator=gen) >= PRUNE).float()
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * scale * kept)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen) * 0.05)


def _input(kind: str, shape: tuple, steps: int, batch: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    events = (rng.random((steps, batch, *shape)) < 0.2).astype(np.float32)
    if kind == "mlp":  # graded: the first layer's operations are MACs
        return events * rng.choice(np.array([0.5, 1.0], np.float32), size=events.shape)
    return events


def neurobench_results(net: torch.nn.Module, x: np.ndarray) -> dict:
    """NeuroBench's Benchmark on x (T, B, *shape), one sample per batch, (B, T, *shape) as it expects."""
    data = torch.from_numpy(x).transpose(0, 1).contiguous()
    loader = DataLoader(TensorDataset(data, torch.zeros(len(data))), batch_size=1, shuffle=False)
    benchmark = Benchmark(SNNTorchModel(net), loader, [], [], METRICS)
    with torch.no_grad():
        return benchmark.run(quiet=True)


def reference(outdir: Path, steps: int, batch: int) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for index, (kind, theirs) in enumerate(KINDS.items()):
        gen = torch.Generator().manual_seed(2100 + index)
        net, shape, scales = build(theirs, gen)
        _weights(net, scales, gen)
        # The exporter's trace fills the membrane buffers, which Footprint counts: export a copy, and
        # judge the original (a deep copy's neurons are not in snnTorch's class-wide instance lists
        # that `snntorch.utils.reset`, called by NeuroBench before each batch, clears).
        nir.write(str(outdir / f"{kind}.nir"), export(theirs, copy.deepcopy(net), shape))
        x = _input(kind, shape, steps, batch, 21_000 + index)
        np.savez(outdir / f"{kind}.npz", input=x)
        results = neurobench_results(net, x)
        (outdir / f"{kind}.json").write_text(json.dumps(results, indent=1))
        print(f"{kind}: {results}", file=sys.stderr)


def main(argv: list[str]) -> int:
    if len(argv) in (2, 4, 6) and argv[0] == "reference":
        options = dict(zip(argv[2::2], argv[3::2]))
        reference(Path(argv[1]), int(options.get("--steps", 50)), int(options.get("--batch", 4)))
        return 0
    print(__doc__.splitlines()[0] + "\nusage: side_neurobench.py reference OUTDIR [--steps T] [--batch B]",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
