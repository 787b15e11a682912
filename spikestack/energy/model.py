"""`estimate`: energy and latency of one inference on a chip, from `Counts` and a `Placement`.

A mesh chip (Loihi-like) is priced per operation (operations.py):

  energy  = events*E_syn + active*E_active + inactive*E_inactive + messages*E_spike
            + hops_ew*E_hop_ew + hops_ns*E_hop_ns + P_static*time
  latency = max over cores (events*t_syn + active*t_active + inactive*t_inactive + messages*t_spike)
            + barrier(tiles)

Xylo (a profile with `cycles`) uses Rockpool's cycle model (xylo.py) and ANN baselines the arithmetic
counts (`estimate_ann` below: the same network priced as arithmetic on a conventional accelerator,
Horowitz's 45 nm MAC and AC energies, from the dense and effective op counts of the run); all return the
same `Budget` (budget.py). A term whose constant the profile lacks is reported unknown, with the reason,
never guessed. The names the cost models share stay importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from spikestack.energy.budget import Budget, constant, per_inference, series, steps_and_batch
from spikestack.energy.barrier import BARRIER_TILES
from spikestack.energy.operations import TERMS, estimate_mesh
from spikestack.energy.placement import Placement
from spikestack.energy.profile import ChipProfile
from spikestack.energy.speck import speck_latency
from spikestack.energy.xylo import XYLO_OPTIONAL, estimate_xylo
from spikestack.errors import ChipError
from spikestack.ir.run import Counts


def estimate_ann(counts: Counts, placement: Placement, profile: ChipProfile, dt: float | None = None) -> Budget:
    """The same network as an ANN: dense MACs x E_MAC at every step (NeuroBench Dense). For the SNN on
    this arithmetic, the usual first-layer rule: the first layer takes the data (non-binary), so all
    its ops are MACs; later layers do an AC per effective synaptic op (a MAC where input is graded).
    `dt` is not read: an ANN baseline has no time per step."""
    shape = steps_and_batch(counts)
    e_mac, e_ac = constant(profile, "energy", "e_mac"), constant(profile, "energy", "e_ac")
    budget = Budget(profile.name, "ann", None, None)
    budget.unknown.append(f"latency: ANN baseline '{profile.name}' has no latency constants")
    if e_mac is None or e_ac is None:
        budget.unknown.insert(0, f"energy: profile '{profile.name}' lacks e_mac or e_ac")
        return budget
    ann, snn_mac, snn_ac = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for name, layer in placement.layers.items():
        dense = series(counts, layer.weights, "dense_macs", shape) * e_mac
        macs = series(counts, layer.weights, "effective_macs", shape)
        acs = series(counts, layer.weights, "effective_acs", shape)
        ann += dense
        snn_mac += (macs + acs if layer.first else macs) * e_mac
        snn_ac += (0 if layer.first else acs) * e_ac
        budget.per_layer[name] = {"mac": per_inference(dense)}
    budget.energy_terms = {"mac": per_inference(ann)}
    budget.energy_per_step, budget.energy_per_sample = ann.mean(axis=1), ann.sum(axis=0)
    budget.energy_j = float(budget.energy_per_sample.mean())
    budget.extra = {
        "ann_one_pass_j": budget.energy_j / shape[0],
        "snn_ops_j": per_inference(snn_mac + snn_ac),
        "snn_ops_terms": {"mac": per_inference(snn_mac), "ac": per_inference(snn_ac)},
    }
    budget.notes.append(f"ANN: dense MACs at each of the {shape[0]} steps (NeuroBench Dense); ann_one_pass_j is one "
                        "step's worth (a feed-forward ANN on a static input); snn_ops_j is the SNN's effective "
                        "ops on this arithmetic, first layer as MACs, later layers as ACs")
    return budget


def estimate(counts: Counts, placement: Placement, profile: ChipProfile, dt: float | None = None,
             activity: Mapping[str, np.ndarray] | None = None) -> Budget:
    """Energy and latency per inference of a run's counts on a placed chip. `dt`: seconds per step,
    needed only for static power and for chips that run in real time (Xylo). `activity` (mesh chips):
    spikes per neuron of some layers, summed over the run, so that a layer split over cores gives each
    core its own share of the spikes instead of its share of the neurons."""
    if placement.chip != profile.name:
        raise ChipError(f"placement is for chip '{placement.chip}', profile is '{profile.name}'")
    if profile.kind == "ann" or profile.cycles:
        budget = (estimate_ann if profile.kind == "ann" else estimate_xylo)(counts, placement, profile, dt)
    else:
        budget = estimate_mesh(counts, placement, profile, dt, activity)
    if "t_event_9_layers" in profile.latency:  # Speck: its latency is one published pipeline figure
        speck_latency(budget, counts, placement, profile)
    budget.notes[:0] = list(placement.notes)
    budget.fit_checked = placement.checked or profile.kind == "ann"
    return budget


__all__ = ["BARRIER_TILES", "TERMS", "XYLO_OPTIONAL", "Budget", "constant", "estimate", "series", "steps_and_batch"]
