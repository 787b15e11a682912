"""SynOps parity: our operation counts beside NeuroBench's SynapticOperations and Sinabs' synops hooks.

"Synaptic operations" has no single definition (BRIEF §5): Sinabs counts spikes x structural fan-out
(zero weights count, k spikes cost k); NeuroBench counts non-zero weights reached by a non-zero input
(Effective ACs where the layer's input is binary, MACs otherwise) and Dense (every weight). Our Counts
carry both (docs/architecture.md), so on the same network and the same spikes each of ours must equal its
peer's, up to the differences listed under the table.

Main side (.venv): builds two torch SNNs with seeded weights (a 16-32-10 LIF MLP with 30 % of its first
weights pruned to zero; a conv net 2x8x8 -conv3x3-> 4x8x8 IF -sumpool2-> 64 -> 10 IF), exports them to
NIR, runs spikestack's simulator with count=True, recording every spiking layer, and writes weights,
inputs and spikes to an .npz. Peer side (.venv-synops, made here on first use: sinabs and neurobench pin
an older nir): rebuilds the same torch modules from the .npz and replays our spikes through the spiking
layers, so all three count the same events (the table compares conventions, not simulators); it also
runs Sinabs' own IAF (single spike, subtractive reset) on the IF conv net as a check of our dynamics.

    .venv/bin/python bench/synops_parity.py [--steps 20] [--batch 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = ROOT / ".venv-synops"  # not .venv-peers: that one is tests/peers/environments.py's
PEERS = {"sinabs": "3.1.3", "neurobench": "2.3.0", "torch": "2.14.1"}
BASE_PYTHON = Path.home() / ".pyenv/versions/3.10.13/bin/python"  # the Python of .venv, as BRIEF §9 says
METRICS = ("synaptic_events", "effective_acs", "effective_macs", "dense_macs")
LAYERS = {"mlp": ("fc1", "fc2"), "conv": ("conv", "pool", "fc")}  # our weighted nodes, in order


def build_torch(seed: int) -> dict[str, np.ndarray]:
    """The two networks' weights, made by torch's own layers from a seed (no biases: NeuroBench and
    Sinabs do not count them as synaptic operations, and neither do we)."""
    import torch

    torch.manual_seed(seed)
    fc1, fc2 = torch.nn.Linear(16, 32, bias=False), torch.nn.Linear(32, 10, bias=False)
    conv, fc = torch.nn.Conv2d(2, 4, 3, padding=1, bias=False), torch.nn.Linear(64, 10, bias=False)
    with torch.no_grad():
        for layer, gain in ((fc1, 4.0), (fc2, 3.0), (conv, 4.0), (fc, 3.0)):
            layer.weight.mul_(gain)  # torch's default init is too weak to make these small nets spike
        fc1.weight.mul_((torch.rand_like(fc1.weight) > 0.3).float())  # prune: zero weights are synapses too
    return {"mlp_fc1": fc1.weight.detach().numpy().copy(), "mlp_fc2": fc2.weight.detach().numpy().copy(),
            "conv_conv": conv.weight.detach().numpy().copy(), "conv_fc": fc.weight.detach().numpy().copy()}


def to_nir(net: str, w: dict[str, np.ndarray]):
    import nir

    def lif(n):
        return nir.LIF(tau=np.full(n, 2.0), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n))

    def if_(shape):
        return nir.IF(r=np.ones(shape), v_threshold=np.ones(shape), v_reset=np.zeros(shape))

    if net == "mlp":
        nodes = {"input": nir.Input(input_type={"input": np.array([16])}), "fc1": nir.Linear(weight=w["mlp_fc1"]),
                 "lif1": lif(32), "fc2": nir.Linear(weight=w["mlp_fc2"]), "lif2": lif(10),
                 "output": nir.Output(output_type={"output": np.array([10])})}
        order = ["input", "fc1", "lif1", "fc2", "lif2", "output"]
    else:
        nodes = {"input": nir.Input(input_type={"input": np.array([2, 8, 8])}),
                 "conv": nir.Conv2d(input_shape=(8, 8), weight=w["conv_conv"], stride=1, padding=1, dilation=1,
                                    groups=1, bias=np.zeros(4, np.float32)),
                 "if1": if_((4, 8, 8)), "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                                             padding=np.array([0, 0])),
                 "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
                 "fc": nir.Linear(weight=w["conv_fc"]), "if2": if_((10,)),
                 "output": nir.Output(output_type={"output": np.array([10])})}
        order = ["input", "conv", "if1", "pool", "flat", "fc", "if2", "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:])), type_check=False)


def run_ours(net: str, w: dict, x: np.ndarray) -> tuple[dict, dict[str, np.ndarray]]:
    """Counts per sample (summed over steps, mean over samples) and recorded spikes, from the NIR export."""
    from spikestack.ir import LoweringOptions, build_graph, lower_graph
    from spikestack.ir.validate import validate_graph
    from spikestack.simulators import simulate

    program = lower_graph(validate_graph(build_graph(to_nir(net, w))), LoweringOptions(dt=1.0, reset="subtract"))
    spiking = [op.name for op in program.neuron_ops]
    run = simulate(program, x, mode="float", record=spiking, count=True)
    counts = {n: {m: float(run.counts.per_node[n][m].sum(axis=0).mean()) for m in METRICS} for n in LAYERS[net]}
    return counts, {n: run.recordings[n]["s"] for n in spiking}


def ensure_peers() -> Path:
    """.venv-synops with the pinned peers, made with the same Python 3.10 as .venv (never the project's)."""
    python = PEERS_DIR / "bin" / "python"
    check = "import importlib.metadata as m, sys; sys.exit(any(m.version(k) != v for k, v in %r.items()))" % PEERS
    if python.exists() and subprocess.run([python, "-c", check], capture_output=True).returncode == 0:
        return python
    if not python.exists():
        subprocess.run([str(BASE_PYTHON), "-m", "venv", str(PEERS_DIR)], check=True)
    pins = [f"{k}=={v}" for k, v in PEERS.items()]
    subprocess.run([python, "-m", "pip", "install", "--quiet", *pins], check=True)
    return python


# ---- peer side: runs in .venv-synops; imports neither spikestack nor the project's nir ----

def peer(npz: str) -> dict:
    sys.modules["samna"] = None  # BRIEF §9: importing samna pip-installs from an outside index; never do
    import torch
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel
    from sinabs.activation import SingleSpike
    from sinabs.hooks import register_synops_hooks
    from sinabs.layers import IAFSqueeze, SumPool2d

    data = np.load(npz)
    steps, batch = data["mlp_x"].shape[:2]

    class Replay(torch.nn.Module):
        """Stands in for a spiking layer: returns the spikes our simulator recorded, step by step
        (time-major (T, B, ...)) or all at once in Sinabs' squeezed (B*T, ...) order."""

        def __init__(self, spikes: np.ndarray, squeezed: bool):
            super().__init__()
            s = torch.from_numpy(spikes.astype(np.float32))
            self.spikes = s.transpose(0, 1).reshape(-1, *s.shape[2:]) if squeezed else s
            self.squeezed, self.t = squeezed, 0

        def forward(self, x):
            if self.squeezed:
                return self.spikes
            self.t += 1
            return self.spikes[self.t - 1]

    def layers(net: str, squeezed: bool, spiking=None) -> list:
        weight = {name: torch.from_numpy(data[f"{net}_{name}"]) for name in ("fc1", "fc2", "conv", "fc")
                  if f"{net}_{name}" in data.files}
        spike = spiking or (lambda name, shape: Replay(data[f"{net}_s_{name}"], squeezed))
        if net == "mlp":
            mods = [torch.nn.Linear(16, 32, bias=False), spike("lif1", 32),
                    torch.nn.Linear(32, 10, bias=False), spike("lif2", 10)]
            mods[0].weight.data, mods[2].weight.data = weight["fc1"], weight["fc2"]
        else:
            mods = [torch.nn.Conv2d(2, 4, 3, padding=1, bias=False), spike("if1", (4, 8, 8)), SumPool2d(2),
                    torch.nn.Flatten(), torch.nn.Linear(64, 10, bias=False), spike("if2", 10)]
            mods[0].weight.data, mods[4].weight.data = weight["conv"], weight["fc"]
        return mods

    class StepNet(torch.nn.Module):
        """(B, T, ...) -> loops over time, one call of every layer per step (as NeuroBench expects)."""

        def __init__(self, mods):
            super().__init__()
            self.mods = torch.nn.ModuleList(mods)

        def forward(self, x):
            outs = []
            for t in range(x.shape[1]):
                h = x[:, t]
                for m in self.mods:
                    h = m(h)
                outs.append(h)
            return torch.stack(outs, 1)

    result = {}
    for net in ("mlp", "conv"):
        x = torch.from_numpy(data[f"{net}_x"].astype(np.float32))  # (T, B, ...)
        model = TorchModel(StepNet(layers(net, squeezed=False)))
        model.register_hooks()
        with torch.no_grad():
            preds = model(x.transpose(0, 1))
        hooks, per_layer = list(model.connection_hooks), []
        for hook in hooks:  # NeuroBench's own metric, one connection layer at a time
            model.connection_hooks = [hook]
            per_layer.append(SynapticOperations()(model, preds, (x.transpose(0, 1), None)))
        seq = torch.nn.Sequential(*layers(net, squeezed=True))
        register_synops_hooks(seq)
        with torch.no_grad():
            seq(x.transpose(0, 1).reshape(-1, *x.shape[2:]))
        sinabs = [float(v) * steps for v in seq.hook_data["synops_per_timestep"].values()]  # per sample
        result[net] = {"neurobench": per_layer, "sinabs": sinabs}
    # Sinabs' own IF dynamics on the conv net, compared spike for spike with ours.
    iaf = lambda name, shape: IAFSqueeze(batch_size=int(batch), spike_fn=SingleSpike, spike_threshold=1.0)
    seq = torch.nn.Sequential(*layers("conv", squeezed=True, spiking=iaf))
    x = torch.from_numpy(data["conv_x"].astype(np.float32)).transpose(0, 1).reshape(-1, 2, 8, 8)
    with torch.no_grad():
        s1 = seq[1](seq[0](x))
        s2 = seq[5](seq[4](seq[3](seq[2](s1))))
    check = {}
    for name, s in (("if1", s1), ("if2", s2)):
        ours = torch.from_numpy(data[f"conv_s_{name}"].astype(np.float32)).transpose(0, 1).reshape(s.shape)
        check[name] = {"ours": int(ours.sum()), "sinabs": int(s.sum()), "differing": int((ours != s).sum())}
    result["conv"]["iaf_check"] = check
    return result


def table(ours: dict, peers: dict) -> str:
    head = ("net", "layer", "ours synaptic_events", "Sinabs synops", "ours eff. ACs", "NB Effective_ACs",
            "ours eff. MACs", "NB Effective_MACs", "ours dense_macs", "NB Dense")
    rows = [head, tuple("---" for _ in head)]
    for net, names in LAYERS.items():
        peer_layers = iter(zip(peers[net]["neurobench"], peers[net]["sinabs"]))
        for name in names:
            o = ours[net][name]
            nb, sn = next(peer_layers) if name != "pool" else ({}, None)  # peers count no pooling
            cell = lambda v: "—" if v is None else f"{v:,.1f}"
            rows.append((net, name, cell(o["synaptic_events"]), cell(sn), cell(o["effective_acs"]),
                         cell(nb.get("Effective_ACs")), cell(o["effective_macs"]), cell(nb.get("Effective_MACs")),
                         cell(o["dense_macs"]), cell(nb.get("Dense"))))
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def worst_ratio(ours: dict, peers: dict) -> float:
    pairs = []
    for net, names in LAYERS.items():
        compared = [n for n in names if n != "pool"]
        for name, nb, sn in zip(compared, peers[net]["neurobench"], peers[net]["sinabs"]):
            o = ours[net][name]
            pairs += [(o["synaptic_events"], sn), (o["effective_acs"], nb["Effective_ACs"]),
                      (o["effective_macs"], nb["Effective_MACs"]), (o["dense_macs"], nb["Dense"])]
    return max(abs(a / b - 1) if b else float(a != 0) for a, b in pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peer", help=argparse.SUPPRESS)  # internal: run the peer side on this .npz
    args = parser.parse_args(argv)
    if args.peer:
        print(json.dumps(peer(args.peer)))
        return 0
    weights = build_torch(args.seed)
    rng = np.random.default_rng(args.seed)
    inputs = {"mlp": (rng.random((args.steps, args.batch, 16)) < 0.2).astype(np.float32),
              "conv": (rng.random((args.steps, args.batch, 2, 8, 8)) < 0.2).astype(np.float32)}
    ours, arrays = {}, dict(weights)
    for net, x in inputs.items():
        ours[net], spikes = run_ours(net, weights, x)
        arrays[f"{net}_x"] = x
        arrays.update({f"{net}_s_{n}": s for n, s in spikes.items()})
    python = ensure_peers()
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "parity.npz", **arrays)
        done = subprocess.run([python, "-I", __file__, "--peer", str(Path(tmp) / "parity.npz")],
                              capture_output=True, text=True, cwd=tmp)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    peers = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"Per sample (sum over {args.steps} steps, mean over {args.batch} samples), same spikes for all:\n")
    print(table(ours, peers))
    print(f"\nlargest |ours / peer - 1| over the compared cells: {worst_ratio(ours, peers):.3g} "
          "(Sinabs averages in float32)")
    print("\n- pool: we count a SumPool2d as a depthwise conv with a constant kernel (Sinabs and NeuroBench count\n"
          "  only Conv/Linear); spikestack.energy leaves these events out, as a chip folds pooling into the next\n"
          "  layer's synapses.\n- AC or MAC: NeuroBench decides per layer call (one step, the whole batch), we "
          "per sample and step;\n  they differ only when some samples of a step have graded input and others not.")
    print("\nSinabs IAF (single spike, subtractive reset) on the conv net vs our simulator, spikes:")
    for name, c in peers["conv"]["iaf_check"].items():
        print(f"  {name}: ours {c['ours']}, Sinabs {c['sinabs']}, differing (sample, step, neuron) {c['differing']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
