"""SANA-FE 2.2.9 as the judge of our energy and latency model: the same network, the same input spikes
and the same placement on cores, priced by SANA-FE's Loihi and by our model with SANA-FE's constants.

Shared by bench/energy_vs_sanafe.py and tests/peers/test_sanafe.py. SANA-FE is GPL-3.0: it runs in
`.venv-sanafe` as a separate program (bench/sanafe_run.py) and nothing here imports it. Its
architecture file is read here as data, into one of our profiles (`sanafe_profile`).

The alignment, documented in docs/energy.md ("Checked against SANA-FE"): SANA-FE's neurons differ
from ours in two ways, a spike reaches the next layer one step later, and the membrane is truncated
to 1/64 after the leak. So both models are priced on the same activity, SANA-FE's own spike raster
(`replay_counts`): our counting (spikestack.ir.counts) and our cost model (spikestack.energy) run on it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nir
import numpy as np
import torch
import yaml

import environments
from spikestack.energy import Placement, estimate, map_to_cores
from spikestack.ir import build_graph, lower_graph, resolve_options
from spikestack.ir.counts import OpCounter
from spikestack.ir.program import Program
from spikestack.ir.run import Counts
from spikestack.simulators import simulate

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "bench" / "sanafe_run.py"
LEAK, THRESHOLD = 0.9, 1.0  # every network: v <- 0.9 v + W s, spike if v > 1, reset to 0
SOURCE = "SANA-FE 2.2.9 sanafe/examples/loihi.yaml ({}), SANA-FE's Loihi model, which its authors calibrated against the chip"


@dataclass
class Network:
    name: str
    program: Program
    weights: dict[str, dict[str, np.ndarray]]  # layer -> source -> (post, pre) dense weights
    weight_ops: dict[tuple[str, str], str]  # (layer, source) -> the Program op that holds those weights
    synapse_hw: dict[str, str]  # layer -> SANA-FE synapse unit
    x: np.ndarray  # (T, n_in) 0/1


def _lif(shape) -> nir.LIF:
    ones = np.ones(shape)
    return nir.LIF(tau=ones * 1e-2, r=ones * 10.0, v_leak=0 * ones, v_threshold=ones * THRESHOLD, v_reset=0 * ones)


def _lower(nodes: dict, edges: list) -> Program:
    graph = build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return lower_graph(graph, resolve_options(dt=1e-3, reset="zero"))  # tau 10 ms, dt 1 ms: leak 0.9, gain 1


def networks(steps: int, seed: int = 0) -> list[Network]:
    """W (BRIEF §8: 784-256-10), a conv net and a recurrent net, with Bernoulli(0.1) input spikes."""
    rng = np.random.default_rng(seed)
    out = []
    w1, w2 = rng.normal(0, 0.08, (256, 784)), rng.normal(0, 0.25, (10, 256))
    nodes = {"input": nir.Input(input_type={"input": np.array([784])}), "fc1": nir.Linear(weight=w1),
             "lif1": _lif(256), "fc2": nir.Linear(weight=w2), "lif2": _lif(10),
             "output": nir.Output(output_type={"output": np.array([10])})}
    order = ["input", "fc1", "lif1", "fc2", "lif2", "output"]
    out.append(Network("W 784-256-10", _lower(nodes, list(zip(order, order[1:]))),
                       {"lif1": {"input": w1}, "lif2": {"lif1": w2}},
                       {("lif1", "input"): "fc1", ("lif2", "lif1"): "fc2"},
                       {"lif1": "loihi_dense_synapse", "lif2": "loihi_dense_synapse"},
                       (rng.random((steps, 784)) < 0.1).astype(np.float32)))
    side, ch = 24, 6  # 1152 inputs, 3456 conv neurons: 2 + 4 + 1 cores of 1024 neurons, over 2 tiles
    kernel, w3 = rng.normal(0, 0.6, (ch, 2, 3, 3)), rng.normal(0, 0.12, (10, ch * side * side))
    nodes = {"input": nir.Input(input_type={"input": np.array([2, side, side])}),
             "conv": nir.Conv2d(input_shape=(side, side), weight=kernel, stride=1, padding=1, dilation=1, groups=1,
                                bias=np.zeros(ch)),
             "lif1": _lif((ch, side, side)),
             "flat": nir.Flatten(input_type={"input": np.array([ch, side, side])}, start_dim=0, end_dim=-1),
             "fc": nir.Linear(weight=w3), "lif2": _lif(10), "output": nir.Output(output_type={"output": np.array([10])})}
    order = ["input", "conv", "lif1", "flat", "fc", "lif2", "output"]
    out.append(Network(f"conv 2x{side}x{side}-c{ch}k3-10", _lower(nodes, list(zip(order, order[1:]))),
                       {"lif1": {"input": _unroll(kernel, (2, side, side))}, "lif2": {"lif1": w3}},
                       {("lif1", "input"): "conv", ("lif2", "lif1"): "fc"},
                       {"lif1": "loihi_conv_synapse", "lif2": "loihi_dense_synapse"},
                       (rng.random((steps, 2 * side * side)) < 0.1).astype(np.float32)))
    w_in, w_rec, w_out = rng.normal(0, 0.25, (128, 100)), rng.normal(0, 0.1, (128, 128)), rng.normal(0, 0.3, (10, 128))
    nodes = {"input": nir.Input(input_type={"input": np.array([100])}), "fc_in": nir.Linear(weight=w_in),
             "lif1": _lif(128), "w_rec": nir.Linear(weight=w_rec), "fc_out": nir.Linear(weight=w_out),
             "lif2": _lif(10), "output": nir.Output(output_type={"output": np.array([10])})}
    edges = [("input", "fc_in"), ("fc_in", "lif1"), ("lif1", "w_rec"), ("w_rec", "lif1"), ("lif1", "fc_out"),
             ("fc_out", "lif2"), ("lif2", "output")]
    out.append(Network("recurrent 100-128r-10", _lower(nodes, edges),
                       {"lif1": {"input": w_in, "lif1": w_rec}, "lif2": {"lif1": w_out}},
                       {("lif1", "input"): "fc_in", ("lif1", "lif1"): "w_rec", ("lif2", "lif1"): "fc_out"},
                       {"lif1": "loihi_dense_synapse", "lif2": "loihi_dense_synapse"},
                       (rng.random((steps, 100)) < 0.1).astype(np.float32)))
    return out


def _unroll(kernel: np.ndarray, in_shape: tuple[int, int, int]) -> np.ndarray:
    """A stride-1, padding-1 convolution as its dense (outputs, inputs) matrix, by torch's own conv2d."""
    n = int(np.prod(in_shape))
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    cols = torch.nn.functional.conv2d(eye, torch.as_tensor(kernel, dtype=torch.float64), padding=1)
    return cols.reshape(n, -1).T.numpy()


def sanafe_profile(arch: Path, out: Path) -> Path:
    """Our profile of SANA-FE's Loihi architecture file, every constant sourced to its line of the file.

    SANA-FE charges a neuron access every step and an update when the neuron is active, so our
    inactive update is the access and our active one access + update; a message costs its send and
    its receive energy."""
    a = yaml.safe_load(arch.read_text())["architecture"]
    tile, core = a["tile"][0], a["tile"][0]["core"][0]
    lif = next(u for u in core["soma"] if u["attributes"].get("model") == "leaky_integrate_fire")["attributes"]
    syn = {u["name"]: u["attributes"] for u in core["synapse"]}
    out_a, in_a, hop = core["axon_out"][0]["attributes"], core["axon_in"][0]["attributes"], tile["attributes"]
    tiles, per_tile = (int(re.search(r"\[0\.\.(\d+)\]", x["name"]).group(1)) + 1 for x in (tile, core))

    for kind in ("energy", "latency"):  # our model has one cost per axis: the file must agree
        if hop[f"{kind}_east_hop"] != hop[f"{kind}_west_hop"] or hop[f"{kind}_north_hop"] != hop[f"{kind}_south_hop"]:
            raise ValueError(f"{arch}: east/west or north/south {kind} of a hop differ")
    units = {"loihi_dense_synapse": syn["loihi_dense_synapse"], "loihi_conv_synapse": syn["loihi_conv_synapse"],
             "loihi_lif": lif, "loihi_out": out_a, "loihi_in": in_a, "tile": hop}

    def c(kind: str, parts: list[tuple[str, str]]) -> dict:
        """Our constant as the sum of SANA-FE attributes `<kind>_<name>` of the named units."""
        value = sum(units[unit][f"{kind}_{name}"] for unit, name in parts)
        what = " + ".join(f"{kind}_{name} of {unit}" for unit, name in parts)
        return {"value": round(float(value) * (1e12 if kind == "energy" else 1e9), 9),
                "unit": "pJ" if kind == "energy" else "ns",
                "source": SOURCE.format(what), "kind": "measured"}

    both = {"syn_op": [("loihi_dense_synapse", "process_spike")], "syn_op_conv": [("loihi_conv_synapse", "process_spike")],
            "neuron_inactive": [("loihi_lif", "access_neuron")],
            "neuron_active": [("loihi_lif", "access_neuron"), ("loihi_lif", "update_neuron")],
            "spike_out": [("loihi_lif", "spike_out")], "hop_ew": [("tile", "east_hop")], "hop_ns": [("tile", "north_hop")]}
    energy = {f"e_{k}": c("energy", v) for k, v in both.items()}
    energy["e_message"] = c("energy", [("loihi_out", "message_out"), ("loihi_in", "message_in")])  # a message: sent + received
    latency = {f"t_{k}": c("latency", v) for k, v in both.items()}
    latency |= {"t_message_out": c("latency", [("loihi_out", "message_out")]),
                "t_message_in": c("latency", [("loihi_in", "message_in")])}
    for n, seconds in a["attributes"]["latency_sync"].items():
        latency[f"t_barrier_tiles_{n}"] = {"value": float(seconds) * 1e9, "unit": "ns", "kind": "measured",
                                           "source": SOURCE.format(f"latency_sync, {n} tiles")}
    limit = {"cores": tiles * per_tile, "cores_per_tile": per_tile, "mesh_rows": a["attributes"]["height"],
             "neurons_per_core": core["attributes"]["max_neurons_supported"], "inputs_on_cores": True}
    profile = {"name": "loihi-sanafe", "kind": "snn", "estimated": False,
               "description": "Intel Loihi as SANA-FE 2.2.9 models it (sanafe/examples/loihi.yaml)",
               "limits": {k: {"value": v, "source": SOURCE.format(k), "kind": "measured"} for k, v in limit.items()},
               "energy": energy, "latency": latency}
    out.write_text(yaml.safe_dump(profile, sort_keys=False))
    return out


def sanafe_arch() -> Path:
    """SANA-FE's shipped Loihi file, as installed in `.venv-sanafe` (read as data, never imported)."""
    python = environments.ensure("sanafe")
    return python.parents[1] / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" / \
        "sanafe" / "examples" / "loihi.yaml"


def _neuron_cores(placement: Placement, layer: str) -> np.ndarray:
    """The core of each neuron of a layer: its cores hold consecutive chunks, in order."""
    return np.concatenate([np.full(c.neurons, c.index) for c in placement.cores_of(layer)])


def run_sanafe(net: Network, placement: Placement, workdir: Path) -> dict:
    """SANA-FE's own run of the network on the placement (bench/sanafe_run.py in .venv-sanafe)."""
    layers = [n for n, layer in placement.layers.items() if layer.kind != "input"]
    z = {"T": np.int64(len(net.x)), "layers": np.array(layers), "input_spikes": net.x.astype(np.int8),
         "input_core": _neuron_cores(placement, "input")}
    for i, name in enumerate(layers):
        z[f"l{i}_core"] = _neuron_cores(placement, name)
        z |= {f"l{i}_leak_decay": np.float64(LEAK), f"l{i}_threshold": np.float64(THRESHOLD),
              f"l{i}_reset": np.float64(0.0), f"l{i}_reset_mode": np.array("hard"),
              f"l{i}_synapse_hw": np.array(net.synapse_hw[name]), f"l{i}_sources": np.array(list(net.weights[name]))}
        for j, (src, w) in enumerate(net.weights[name].items()):
            z[f"l{i}_w{j}"] = w
            z[f"l{i}_m{j}"] = placement.layers[name].inputs[src].toarray().astype(bool)  # our structural synapses
    path = workdir / f"{net.name.split()[0]}.npz"
    np.savez(path, **z)
    done = subprocess.run([str(environments.ensure("sanafe")), str(RUNNER), str(path), str(path.with_suffix(".json"))],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"SANA-FE failed on {net.name}: {done.stderr.strip()[-800:]}")
    return json.loads(path.with_suffix(".json").read_text())


def rasters(net: Network, sanafe: dict) -> dict[str, np.ndarray]:
    """SANA-FE's spikes of each layer (inputs included) as (T, neurons) 0/1 arrays."""
    spikes = {}
    for name, events in sanafe["spike_events"].items():
        raster = np.zeros((len(net.x), int(np.prod(net.program.op(name).out_shape))))
        for step, neuron in events:
            raster[step - 1, neuron] = 1.0  # SANA-FE counts steps from 1
        spikes[name] = raster
    return spikes


def replay_counts(net: Network, spikes: dict[str, np.ndarray]) -> Counts:
    """Our Counts of SANA-FE's activity (`rasters`): its spikes as our neuron ops' outputs, the weight
    ops' currents computed from them, and every op counted by our own OpCounter (spikestack.ir.counts).
    Synaptic reads happen in the step of the spike, as SANA-FE charges them."""
    program, steps = net.program, len(net.x)
    outputs, kinds = {}, {}
    for (layer, src), op_name in net.weight_ops.items():
        outputs[op_name] = spikes[src] @ net.weights[layer][src].T
    for op in program.ops:
        if op.primitive.is_input or op.is_neuron:
            outputs[op.name], kinds[op.name] = spikes[op.name], "binary"
        elif op.name in outputs:
            kinds[op.name] = "graded"
        else:  # shape-only ops (Flatten, Output) pass their source on
            outputs[op.name], kinds[op.name] = outputs[op.sources[0].name], kinds[op.sources[0].name]
    per_node = {}
    for op in program.ops:
        received = None
        if op.sources:
            received = sum(outputs[s.name] for s in op.sources).reshape(steps, 1, *op.in_shape)
        per_node[op.name] = OpCounter(op)(received, outputs[op.name].reshape(steps, 1, *op.out_shape),
                                          input_kind=kinds[op.sources[0].name] if op.sources else None,
                                          output_kind=kinds[op.name])
    return Counts(per_node)


COMPONENTS = {"synapse": ("synaptic", "synaptic_conv"), "soma": ("neuron_active", "neuron_inactive", "spike_out"),
              "network": ("spike", "message", "hop_ew", "hop_ns")}
ENERGY_TOLERANCE, LATENCY_TOLERANCE = 0.05, 0.20  # issue 21: per network, against SANA-FE detailed timing


def components(budget) -> dict[str, float]:
    """Our energy terms summed into SANA-FE's categories, plus the total and the latency."""
    out = {name: sum(budget.energy_terms.get(t, 0.0) for t in terms) for name, terms in COMPONENTS.items()}
    return out | {"total": budget.energy_j, "latency": budget.latency_s}


def compare(net: Network, profile, loihi, workdir: Path) -> dict:
    """One network on both: SANA-FE's figures, ours with its constants on its activity (the same
    placement, each core's share of the spikes from SANA-FE's raster), ours with `loihi`'s constants
    (Davies et al. 2018) on the same counts, and our simulator's own synaptic events for scale."""
    placement = map_to_cores(net.program, profile)
    sanafe = run_sanafe(net, placement, workdir)
    spikes = rasters(net, sanafe)
    counts = replay_counts(net, spikes)
    activity = {name: raster.sum(axis=0) for name, raster in spikes.items()}  # spikes per neuron
    ours = components(estimate(counts, placement, profile, activity=activity))
    theirs = {k: sanafe["totals"]["energy"][k] for k in COMPONENTS} | {
        "total": sanafe["totals"]["energy"]["total"], "latency": sanafe["totals"]["sim_time"]}
    weight_ops = set(net.weight_ops.values())
    events = sum(counts.total("synaptic_events", op) for op in weight_ops)
    davies = components(estimate(counts, map_to_cores(net.program, loihi), loihi, activity=activity))
    shape = net.program.op(net.program.inputs[0]).out_shape
    own = simulate(net.program, net.x.reshape(len(net.x), 1, *shape), count=True).counts  # our dynamics, for scale
    own_events = sum(own.total("synaptic_events", op) for op in weight_ops)
    return {"network": net.name, "cores": placement.cores_used, "tiles": placement.tiles_used,
            "events": {"ours": events, "sanafe": sanafe["totals"]["synaptic_events"], "own_run": own_events},
            "messages": sanafe["totals"]["messages_sent"], "ours": ours, "sanafe": theirs, "loihi": davies,
            "sanafe_wall_s": sanafe["wall_time_s"]}


__all__ = ["COMPONENTS", "ENERGY_TOLERANCE", "LATENCY_TOLERANCE", "Network", "compare", "components", "networks",
           "rasters", "replay_counts", "run_sanafe", "sanafe_arch", "sanafe_profile"]
