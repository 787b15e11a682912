"""Run one sample of a mapped SNN on SANA-FE 2.2.9's own Loihi preset; the energy/latency oracle.

Runs in `.venv-sanafe` (tests/peers/environments.py) and never imports spikestack (SANA-FE is
GPL-3.0; this script only drives it as a separate program):

    .venv-sanafe/bin/python bench/sanafe_run.py NET.npz OUT.json [detailed|simple|cycle]

The architecture is SANA-FE's shipped `sanafe/examples/loihi.yaml` (32 tiles x 4 cores, an 8x4 mesh,
`sync_model: table`), simulated with the timing model SANA-FE calls "detailed" (its semi-analytical
message scheduler; `SpikingChip.sim(timing_model="detailed")`), unless the third argument names
another of its timing models.

NET.npz (all keys flat; `l{i}_` is layer i of `layers`; "scalar or (n,)" values broadcast per neuron):
    T                 int              steps to simulate
    layers            (L,) str         layer names in order ("input" is reserved for the input group)
    input_spikes      (T, n_in) 0/1    spike trains of the input neurons (SANA-FE model `input`)
    input_core        (n_in,) int      core 0..127 of each input neuron (core c = tile c//4, core c%4)
    l{i}_core         (n,) int         core of each neuron of layer i (n = the layer's neuron count)
    l{i}_leak_decay   scalar or (n,)   SANA-FE `leak_decay`: v <- leak_decay * v each step
    l{i}_threshold    scalar or (n,)   fires when v > threshold (strict)
    l{i}_reset        scalar or (n,)   potential after a spike (reset_mode "hard")
    l{i}_reset_mode   str              "hard" (v <- reset), "soft" (v -= threshold) or "none"
    l{i}_synapse_hw   str              synapse unit of the layer's incoming synapses:
                                       "loihi_dense_synapse" | "loihi_sparse_synapse" | "loihi_conv_synapse"
    l{i}_sources      (S,) str         each source: "input" or a name from `layers`
    l{i}_w{j}         (n, n_src) float weights from source j, (post, pre)
    l{i}_m{j}         (n, n_src) bool  optional: which (post, pre) pairs are synapses; default w != 0.
                                       A masked-in zero weight is still a synapse (SANA-FE charges
                                       energy_process_spike per synapse read, whatever its weight).

Our neuron (v <- leak*v + sum_j w_j s_j; spike if v > threshold; reset to 0) maps onto SANA-FE's
`leaky_integrate_fire` soma as leak_decay=leak, threshold, reset_mode="hard", reset=0, with
input_decay=0 (so the synaptic current lasts one step) and bias=0. SANA-FE then differs from ours
in three ways (see SEMANTICS): a spike fired at step t is integrated by its targets at step t+1;
leak_decay*v is truncated toward zero to a multiple of 1/64 before the input is added; weights pass
through float32 on the way in.

OUT.json: SANA-FE's own numbers, joules and seconds.
    totals:   energy {synapse, dendrite, soma, network, total}, sim_time, synaptic_events (SANA-FE's
              "spikes": synapse reads), messages_sent ("packets_sent"), hops, neurons_updated,
              neurons_fired, spikes (per layer, "input" included)
    per_step: the same per step (perf trace; messages and hops from the message trace) and
              spikes_per_layer {name: [T]}
    spike_events: {name: [[step, neuron], ...]}, steps 1-based as SANA-FE counts them
    cross_check: the energies rebuilt from the counts and loihi.yaml's constants (only to check
              that we read SANA-FE's cost model right; never used in place of its numbers)
"""

from __future__ import annotations

import sys

sys.modules["spikestack"] = None  # the GPL side must never see our package

import importlib.metadata  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from importlib.resources import files  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import sanafe  # noqa: E402
import yaml  # noqa: E402

ARCH = files("sanafe.examples") / "loihi.yaml"
INPUT = "input"


def per_neuron(value: np.ndarray, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))


def build(net: Any, cores: list, z: Any) -> tuple[dict[str, Any], list[str]]:
    """Create the groups, place every neuron and connect them; returns the groups by name."""
    spikes = np.asarray(z["input_spikes"]).astype(bool)
    if spikes.shape[0] != int(z["T"]):  # an `input` neuron simply stops firing past its train's end
        raise ValueError(f"input_spikes has {spikes.shape[0]} steps, T is {int(z['T'])}")
    in_core = np.asarray(z["input_core"], dtype=np.int64)
    layers = [str(s) for s in z["layers"]]
    if INPUT in layers:
        raise ValueError(f"{INPUT!r} is the input group's name; rename that layer")
    groups = {INPUT: net.create_neuron_group(INPUT, spikes.shape[1], {}, log_spikes=True)}
    # Each `input` soma unit holds ONE spike train (InputModel ignores the neuron address), which is
    # why loihi.yaml gives every core 1024 of them: input k of a core gets its own loihi_inputs[k].
    used: Counter[int] = Counter()
    for i, neuron in enumerate(groups[INPUT].neurons):
        c = int(in_core[i])
        neuron.set_attributes(soma_hw_name=f"loihi_inputs[{used[c]}]",
                              model_attributes={"spikes": [bool(s) for s in spikes[:, i]]})
        used[c] += 1
        neuron.map_to_core(cores[c])  # mapping order = processing order within a core
    for i, name in enumerate(layers):
        core = np.asarray(z[f"l{i}_core"], dtype=np.int64)
        n = len(core)
        leak, vth, reset = (per_neuron(z[f"l{i}_{k}"], n) for k in ("leak_decay", "threshold", "reset"))
        uniform = all(np.all(a == a[0]) for a in (leak, vth, reset))
        attrs = {"input_decay": 0.0, "bias": 0.0, "reset_mode": str(z[f"l{i}_reset_mode"])}
        if uniform and n:
            attrs |= {"leak_decay": float(leak[0]), "threshold": float(vth[0]), "reset": float(reset[0])}
        group = net.create_neuron_group(name, n, attrs, default_synapse_hw_name=str(z[f"l{i}_synapse_hw"]),
                                        log_spikes=True, soma_hw_name="loihi_lif")
        for k, neuron in enumerate(group.neurons):
            if not uniform:  # only model_attributes: the soma_/dendrite_attributes kwargs are swapped in 2.2.9
                neuron.set_attributes(model_attributes={"leak_decay": float(leak[k]),
                                                        "threshold": float(vth[k]), "reset": float(reset[k])})
            neuron.map_to_core(cores[int(core[k])])
        groups[name] = group
    for i, name in enumerate(layers):  # connect once every group exists (sources may come later)
        for j, src in enumerate(str(s) for s in z[f"l{i}_sources"]):
            w = np.asarray(z[f"l{i}_w{j}"], dtype=np.float64)
            mask = np.asarray(z[f"l{i}_m{j}"], dtype=bool) if f"l{i}_m{j}" in z else w != 0
            if w.shape != (len(groups[name]), len(groups[src])) or mask.shape != w.shape:
                raise ValueError(f"l{i}_w{j}: shape {w.shape}, want (post, pre) = "
                                 f"({len(groups[name])}, {len(groups[src])})")
            post, pre = np.nonzero(mask)
            pairs = list(zip(pre.tolist(), post.tolist()))  # SANA-FE wants (src, dest) offsets
            groups[src].connect_neurons_sparse(groups[name], {"weight": w[post, pre].tolist()}, pairs)
    return groups, [INPUT, *layers]


def cross_check(z: Any, groups: dict[str, Any], names: list[str], spikes: dict[str, np.ndarray],
                run: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Rebuild each energy from counts and loihi.yaml's constants, to check SEMANTICS against SANA-FE."""
    a = yaml.safe_load(ARCH.read_text())["architecture"]["tile"][0]
    core = a["core"][0]
    soma = core["soma"][0]["attributes"]
    syn = {u["name"]: u["attributes"]["energy_process_spike"] for u in core["synapse"]}
    e_in, e_out = core["axon_in"][0]["attributes"]["energy_message_in"], core["axon_out"][0]["attributes"]["energy_message_out"]
    hop = a["attributes"]
    # synapse: one read per (spike of pre, synapse of pre), zero weights included
    synapse, events = 0.0, 0
    for i, name in enumerate(names[1:]):
        for j, src in enumerate(str(s) for s in z[f"l{i}_sources"]):
            mask = np.asarray(z[f"l{i}_m{j}"], dtype=bool) if f"l{i}_m{j}" in z else np.asarray(z[f"l{i}_w{j}"]) != 0
            n_ev = int(spikes[src].sum(axis=0) @ mask.sum(axis=0))
            events += n_ev
            synapse += n_ev * syn[str(z[f"l{i}_synapse_hw"])]
    T, n_lif = int(z["T"]), sum(len(groups[n]) for n in names[1:])
    in_spk, lif_spk = int(spikes[INPUT].sum()), sum(int(spikes[n].sum()) for n in names[1:])
    lif_updated = int(run["neurons_updated"]) - in_spk  # input neurons count as "updated" when they fire
    soma_e = (T * n_lif * soma["energy_access_neuron"] + lif_updated * soma["energy_update_neuron"]
              + lif_spk * soma["energy_spike_out"])
    real = [m for m in messages if not m["placeholder"]]
    hops_e = 0.0
    for m in real:  # x: east if src.x < dest.x else west; y: north if src.y < dest.y else south
        dx, dy = m["dest_x"] - m["src_x"], m["dest_y"] - m["src_y"]
        hops_e += abs(dx) * hop["energy_east_hop" if dx > 0 else "energy_west_hop"]
        hops_e += abs(dy) * hop["energy_north_hop" if dy > 0 else "energy_south_hop"]
    network = len(real) * (e_in + e_out) + hops_e
    return {"synaptic_events": events, "synapse": synapse, "soma": soma_e, "network": network,
            "network_hops": hops_e, "network_axon_out": len(real) * e_out, "network_axon_in": len(real) * e_in,
            "lif_neurons_updated": lif_updated,
            "rel_err": {k: abs(v - run["energy"][k]) / max(abs(run["energy"][k]), 1e-30)
                        for k, v in (("synapse", synapse), ("soma", soma_e), ("network", network))}}


def main(net_path: str, out_path: str, timing_model: str = "detailed") -> int:
    z = dict(np.load(net_path, allow_pickle=False))
    T = int(z["T"])
    wall = time.perf_counter()
    arch = sanafe.load_arch(str(ARCH))
    net = sanafe.Network()
    groups, names = build(net, list(arch.cores()), z)
    chip = sanafe.SpikingChip(arch)
    chip.load(net)
    # SANA-FE's C++ INFO lines and progress go to fd 1: send them to stderr so our stdout stays clean
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        run = chip.sim(T, timing_model=timing_model, processing_threads=1, spike_trace=True,
                       perf_trace=True, message_trace=True)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
    wall = time.perf_counter() - wall

    spikes = {name: np.zeros((T, len(groups[name])), dtype=np.int64) for name in names}
    for t, step in enumerate(run["spike_trace"]):
        for address in step:
            spikes[address.group_name][t, address.neuron_offset] = 1
    messages = [m for step in run["message_trace"] for m in step]
    msg_step, hop_step = np.zeros(T, dtype=np.int64), np.zeros(T, dtype=np.int64)
    for m in messages:
        if not m["placeholder"]:
            msg_step[m["timestep"] - 1] += 1
            hop_step[m["timestep"] - 1] += m["hops"]
    perf = run["perf_trace"]
    per_step = {f"energy_{k}": list(perf[f"{k}_energy"]) for k in ("synapse", "dendrite", "soma", "network", "total")}
    per_step |= {"sim_time": list(perf["sim_time"]), "synaptic_events": list(perf["spikes"]),
                 "hops": list(perf["hops"]), "neurons_updated": list(perf["updated"]),
                 "neurons_fired": list(perf["fired"]), "messages_sent": msg_step.tolist(),
                 "spikes_per_layer": {n: spikes[n].sum(axis=1).tolist() for n in names}}
    totals = {"energy": dict(run["energy"]), "sim_time": run["sim_time"], "synaptic_events": run["spikes"],
              "messages_sent": run["packets_sent"], "hops": int(sum(perf["hops"])),
              "neurons_updated": run["neurons_updated"], "neurons_fired": run["neurons_fired"],
              "spikes": {n: int(spikes[n].sum()) for n in names}}
    # every spike as [step (1-based), neuron], for neuron-level comparisons with our simulator
    events = {n: [[int(t) + 1, int(k)] for t, k in zip(*np.nonzero(spikes[n]))] for n in names}
    assert msg_step.sum() == run["packets_sent"] and hop_step.sum() == totals["hops"], "trace != summary"
    out = {"sanafe_version": importlib.metadata.version("sanafe"), "arch": str(ARCH),
           "timing_model": timing_model, "T": T, "wall_time_s": wall, "totals": totals, "per_step": per_step,
           "spike_events": events,
           "cross_check": cross_check(z, groups, names, spikes, run, messages)}
    with open(out_path, "w") as fh:
        json.dump(out, fh, indent=1)
    e = totals["energy"]
    print(f"sanafe {out['sanafe_version']}: {e['total'] * 1e6:.3f} uJ, {totals['sim_time'] * 1e3:.4f} ms, "
          f"{totals['synaptic_events']} synaptic events, {totals['messages_sent']} messages, {wall:.1f} s wall")
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.split("\n\n")[1])
    sys.exit(main(*sys.argv[1:]))
