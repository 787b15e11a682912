"""The energy and latency model against sums done by hand with Davies et al. 2018's constants typed as
literals (pJ and ns, Table 2), on a feed-forward and a recurrent graph; plus unknown constants, static
power, the ANN baseline and Xylo's cycle model."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import yaml

from spikestack.energy import estimate, load_profile, map_to_cores
from spikestack.ir import METRICS, Counts, LoweringOptions, build_graph, lower_graph
from spikestack.ir.validate import validate_graph

PJ, NS = 1e-12, 1e-9
# Davies et al., IEEE Micro 2018, Table 2 (Loihi): energy pJ / time ns
E_SYN, E_ACT, E_INACT, E_SPIKE, E_EW, E_NS = 23.6 * PJ, 81 * PJ, 52 * PJ, 1.7 * PJ, 3.0 * PJ, 4.0 * PJ
T_SYN, T_ACT, T_INACT, T_SPIKE = 3.5 * NS, 8.4 * NS, 5.3 * NS, 2.1 * NS
T_BARRIER_1, T_BARRIER_32 = 113 * NS, 465 * NS


def barrier(tiles: int) -> float:
    return T_BARRIER_1 + (T_BARRIER_32 - T_BARRIER_1) * (tiles - 1) / 31  # 113..465 ns over 1..32 tiles


def lif(n: int) -> nir.LIF:
    return nir.LIF(tau=np.full(n, 0.01), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))


def affine(n_out: int, n_in: int) -> nir.Affine:
    return nir.Affine(weight=np.ones((n_out, n_in), np.float32), bias=np.zeros(n_out, np.float32))


def program(recurrent: bool, n_in: int = 2, n_hidden: int = 3, n_out: int = 2):
    """input -> fc1 -> lif1 -> fc2 -> lif2 -> output, with lif1 -> w_rec -> lif1 when recurrent."""
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}), "fc1": affine(n_hidden, n_in),
             "lif1": lif(n_hidden), "fc2": affine(n_out, n_hidden), "lif2": lif(n_out),
             "output": nir.Output(output_type={"output": np.array([n_out])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    if recurrent:
        nodes["w_rec"] = affine(n_hidden, n_hidden)
        edges += [("lif1", "w_rec"), ("w_rec", "lif1")]
    graph = validate_graph(build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)))
    return lower_graph(graph, LoweringOptions(dt=1e-3))


def counts_of(table: dict[str, dict[str, list[int]]]) -> Counts:
    """Counts of one sample from per-step lists; metrics not given are zero."""
    steps = len(next(iter(next(iter(table.values())).values())))
    return Counts({node: {m: np.array(metrics.get(m, [0] * steps), np.int64).reshape(steps, 1) for m in METRICS}
                   for node, metrics in table.items()})


FEED_FORWARD = {  # two steps, one sample
    "input": {"spikes_out": [1, 2]},
    "fc1": {"synaptic_events": [3, 6]},  # 1 then 2 input spikes x fan-out 3
    "lif1": {"neuron_updates": [3, 3], "active_neuron_updates": [3, 2], "spikes_out": [1, 0]},
    "fc2": {"synaptic_events": [2, 0]},  # lif1's spike x fan-out 2
    "lif2": {"neuron_updates": [2, 2], "active_neuron_updates": [2, 1], "spikes_out": [0, 1]},
}


def test_feed_forward_energy_and_latency_by_hand():
    prog = program(recurrent=False)
    placement = map_to_cores(prog, load_profile("loihi"))
    # cores 0 and 1, both in tile 0 (Loihi's tiles hold 4 cores)
    assert [(c.layer, c.position) for c in placement.cores] == [("lif1", (0, 0)), ("lif2", (0, 0))]
    budget = estimate(counts_of(FEED_FORWARD), placement, load_profile("loihi"))
    # step 0: 3 + 2 synaptic events, 3 + 2 active updates, lif1's spike: one message to lif2's core in
    #         the same tile (no hop); step 1: 6 events, 2 + 1 active, 1 + 1 inactive updates, and
    #         lif2's spike leaves the chip (no message).
    step0 = 5 * E_SYN + 5 * E_ACT + 1 * E_SPIKE
    step1 = 6 * E_SYN + 3 * E_ACT + 2 * E_INACT
    assert budget.energy_per_step == pytest.approx([step0, step1], rel=1e-12)
    assert budget.energy_j == pytest.approx(11 * E_SYN + 8 * E_ACT + 2 * E_INACT + E_SPIKE, rel=1e-12)
    assert budget.energy_terms == pytest.approx({"synaptic": 11 * E_SYN, "neuron_active": 8 * E_ACT,
                                                 "neuron_inactive": 2 * E_INACT, "spike": E_SPIKE,
                                                 "hop_ew": 0.0, "hop_ns": 0.0}, rel=1e-12)
    assert budget.per_layer["lif1"]["synaptic"] == pytest.approx(9 * E_SYN, rel=1e-12)
    assert budget.per_layer["lif2"]["neuron_inactive"] == pytest.approx(1 * E_INACT, rel=1e-12)
    # latency: the slower core each step, plus the barrier over the 1 tile in use. A core's time is the
    # longer of its receive timeline (synaptic events) and its send one (neuron updates, spikes).
    # step 0: lif1's core: receive 3*3.5 = 10.5 ns, send 3*8.4 + 1*2.1 = 27.3 ns (lif2's: 7 and 16.8 ns)
    # step 1: lif1's core: receive 6*3.5 = 21 ns, send 2*8.4 + 1*5.3 = 22.1 ns (lif2's: 0 and 13.7 ns)
    lat0 = 3 * T_ACT + T_SPIKE
    lat1 = 2 * T_ACT + T_INACT
    assert budget.latency_per_step == pytest.approx([lat0 + barrier(1), lat1 + barrier(1)], rel=1e-12)
    assert budget.latency_s == pytest.approx(27.3 * NS + 22.1 * NS + 2 * 113 * NS, rel=1e-12)
    assert budget.latency_terms == pytest.approx({"synaptic": 0.0, "neuron_active": 5 * T_ACT,
                                                  "neuron_inactive": T_INACT, "spike": T_SPIKE,
                                                  "barrier": 2 * 113 * NS}, rel=1e-12)
    assert budget.dominant == "neuron_active"
    assert budget.unknown == ["static: profile 'loihi' has no static power 'p_static'"]
    assert not budget.energy_complete and budget.latency_complete


def test_recurrent_energy_and_latency_by_hand():
    prog = program(recurrent=True)
    placement = map_to_cores(prog, load_profile("loihi"))
    table = {
        "input": {"spikes_out": [1, 0]},
        "fc1": {"synaptic_events": [3, 0]},
        "w_rec": {"synaptic_events": [0, 3]},  # lif1's spike of step 0 arrives one step later, fan-out 3
        "lif1": {"neuron_updates": [3, 3], "active_neuron_updates": [3, 3], "spikes_out": [1, 0]},
        "fc2": {"synaptic_events": [2, 0]},
        "lif2": {"neuron_updates": [2, 2], "active_neuron_updates": [2, 0]},
    }
    budget = estimate(counts_of(table), placement, load_profile("loihi"))
    # lif1's spike goes to two cores of tile 0: its own (recurrence) and lif2's; no hop.
    energy = 8 * E_SYN + 8 * E_ACT + 2 * E_INACT + 2 * E_SPIKE
    assert budget.energy_j == pytest.approx(energy, rel=1e-12)
    assert budget.per_layer["lif1"]["synaptic"] == pytest.approx(6 * E_SYN, rel=1e-12)  # fc1 + w_rec
    # step 0: lif1's core: receive 3*3.5, send 3*8.4 + 2*2.1 = 29.4 ns; step 1: receive 3*3.5 (w_rec), send
    # 3*8.4 = 25.2 ns (lif2's: 2*5.3)
    assert budget.latency_s == pytest.approx(29.4 * NS + 25.2 * NS + 2 * barrier(1), rel=1e-12)


@pytest.mark.parametrize("node, metrics, joules, seconds", [
    ("fc", {"synaptic_events": [1]}, 23.6e-12, 3.5e-9),
    ("lif", {"neuron_updates": [1], "active_neuron_updates": [1]}, 81e-12, 8.4e-9),
    ("lif", {"neuron_updates": [1]}, 52e-12, 5.3e-9),
    ("lif", {"spikes_out": [1]}, 1.7e-12, 2.1e-9),  # to its own core through the recurrent synapse
])
def test_davies_per_operation_figures_on_one_core(node, metrics, joules, seconds):
    nodes = {"input": nir.Input(input_type={"input": np.array([1])}), "fc": affine(1, 1), "lif": lif(1),
             "w_rec": affine(1, 1), "output": nir.Output(output_type={"output": np.array([1])})}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    prog = lower_graph(validate_graph(build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))),
                       LoweringOptions(dt=1e-3))
    placement = map_to_cores(prog, load_profile("loihi"))
    assert placement.cores_used == 1
    budget = estimate(counts_of({node: metrics}), placement, load_profile("loihi"))
    assert budget.energy_j == joules  # exactly the published figure
    assert budget.latency_s == seconds + 113e-9  # plus the one-tile barrier


def test_static_power_uses_dt(tmp_path):
    data = yaml.safe_load(open(load_profile("loihi").path))
    data["energy"]["p_static"] = {"value": 1.0, "unit": "mW", "source": "test", "kind": "assumed"}
    path = tmp_path / "loihi.yaml"
    path.write_text(yaml.safe_dump(data))
    profile = load_profile(path)
    prog = program(recurrent=False)
    budget = estimate(counts_of(FEED_FORWARD), map_to_cores(prog, profile), profile, dt=1e-3)
    assert budget.energy_terms["static"] == pytest.approx(1e-3 * 2 * 1e-3, rel=1e-12)  # 1 mW x 2 steps x 1 ms
    assert budget.energy_complete and not budget.unknown


def test_static_power_over_a_lower_bound_latency_is_a_lower_bound(tmp_path):
    data = yaml.safe_load(open(load_profile("loihi").path))
    data["energy"]["p_static"] = {"value": 1.0, "unit": "mW", "source": "test", "kind": "assumed"}
    del data["latency"]["t_neuron_active"]  # one latency term unknown: the latency is a lower bound
    path = tmp_path / "loihi.yaml"
    path.write_text(yaml.safe_dump(data))
    profile = load_profile(path)
    budget = estimate(counts_of(FEED_FORWARD), map_to_cores(program(recurrent=False), profile), profile)
    assert not budget.latency_complete
    assert budget.energy_terms["static"] == pytest.approx(1e-3 * budget.latency_s, rel=1e-12)
    assert not budget.energy_complete


def test_missing_constants_are_unknown_not_invented(fixtures_dir):
    prog = program(recurrent=False)
    truenorth = load_profile("truenorth")
    budget = estimate(counts_of(FEED_FORWARD), map_to_cores(prog, truenorth), truenorth)
    assert budget.energy_j == pytest.approx(11 * 26 * PJ, rel=1e-12)  # only ~26 pJ per synaptic event is known
    assert not budget.energy_complete and budget.latency_s is None
    assert "neuron_active: profile 'truenorth' has no 'e_neuron_active'" in budget.unknown
    speck = load_profile("speck")
    budget = estimate(counts_of(FEED_FORWARD), map_to_cores(prog, speck), speck)
    assert budget.energy_j is None and budget.per_layer == {}
    assert budget.unknown == ["energy: profile 'speck' has no per-operation energy (has: nothing)"]


def test_speck_latency_is_the_published_event_pipeline_figure():
    """SynSense: 3.36 us for one event through 9 layers. Speck is asynchronous, so the output follows the
    last input event by that much; a 2-layer network is taken to take no longer (issue 21)."""
    prog = program(recurrent=False)
    speck = load_profile("speck")
    budget = estimate(counts_of(FEED_FORWARD), map_to_cores(prog, speck), speck)
    assert budget.latency_s == 3.36e-6 and budget.latency_complete
    assert budget.latency_per_step.tolist() == [0.0, 3.36e-6] and budget.latency_terms == {"event_pipeline": 3.36e-6}
    assert any("uses 2 of the 9 cores" in note for note in budget.notes)


def test_ann_baseline_and_first_layer_rule():
    prog = program(recurrent=False)
    table = {"fc1": {"dense_macs": [6, 6], "effective_macs": [4, 0], "effective_acs": [0, 2]},
             "fc2": {"dense_macs": [6, 6], "effective_acs": [3, 0]}}
    fp32 = load_profile("ann-45nm-fp32")
    budget = estimate(counts_of(table), map_to_cores(prog, fp32), fp32)
    e_mac, e_ac = 4.6 * PJ, 0.9 * PJ  # Horowitz 2014, 45 nm fp32: mul 3.7 + add 0.9; add 0.9
    assert budget.energy_j == pytest.approx(24 * e_mac, rel=1e-12)  # every weight, every step
    assert budget.extra["ann_one_pass_j"] == pytest.approx(12 * e_mac, rel=1e-12)
    # first layer (takes the data): all 6 effective ops are MACs; later layers: 3 ACs
    assert budget.extra["snn_ops_j"] == pytest.approx(6 * e_mac + 3 * e_ac, rel=1e-12)
    assert budget.latency_s is None


def test_xylo_cycle_model_by_hand():
    prog = program(recurrent=True)  # lif1 hidden (3, recurrent fan-out 3), lif2 output (2), 2 inputs
    table = {"input": {"spikes_out": [1, 0]}, "lif1": {"spikes_out": [1, 0]}}
    xylo = load_profile("xylo-audio2")
    budget = estimate(counts_of(table), map_to_cores(prog, xylo), xylo, dt=1e-3)
    # Rockpool syns61201 cycles_model per step: input spikes * N_hidden * 3.5 + hidden spikes * fan-out * 7
    # + hidden spikes * N_out * 8 + N_hidden * 19 + N_out * 12
    step0 = 1 * 3 * 3.5 + 1 * 3 * 7 + 1 * 2 * 8 + 3 * 19 + 2 * 12  # 128.5
    step1 = 3 * 19 + 2 * 12  # 81
    assert budget.extra["cycles_per_step_max"] == step0 == 128.5
    assert budget.extra["cycles_per_step_mean"] == (step0 + step1) / 2
    assert budget.extra["clock_hz_needed"] == pytest.approx(128.5 * 1.2 / 1e-3)  # est_clock_freq, 20 % margin
    assert budget.cycle_terms == {"input_event_loop": 10.5, "hidden_syn_update": 21.0, "output_syn_update": 16.0,
                                  "hidden_neuron": 114.0, "output_neuron": 48.0}
    assert budget.energy_j == pytest.approx(291e-6 * 2 * 1e-3)  # published 291 uW x 2 steps x 1 ms
    assert budget.latency_s == pytest.approx(2e-3)


def _profile(tmp_path, base: str, name: str, limits: dict, energy: dict | None = None, latency: dict | None = None):
    """A copy of a shipped profile with some limits (and constants, by value and unit) replaced."""
    data = yaml.safe_load(open(load_profile(base).path))
    data["name"] = name
    for key, value in limits.items():
        data["limits"][key] = {"value": value, "source": "test", "kind": "assumed"}
    for section, table in (("energy", energy), ("latency", latency)):
        if table is not None:
            data[section] = {k: {"value": v, "unit": u, "source": "test", "kind": "assumed"} for k, (v, u) in table.items()}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_profile(path)


def test_messages_across_tiles_cost_hops_not_local_spikes_by_hand(tmp_path):
    """Tiles of 2 cores, 2 neurons a core, a mesh 2 tiles high: lif1 on cores 0-1 (tile 0), lif2 on core
    2 (tile 1, one row north). A lif1 spike is one message to another tile: one north-south hop, no
    e_spike_local; the step's latency adds that hop's transit, and the barrier is over 2 tiles (issue 21)."""
    chip = _profile(tmp_path, "loihi", "two-per-tile", {"neurons_per_core": 2, "cores_per_tile": 2, "mesh_rows": 2})
    placement = map_to_cores(program(recurrent=False), chip)
    assert [(c.layer, c.neurons, c.position) for c in placement.cores] == \
        [("lif1", 2, (0, 0)), ("lif1", 1, (0, 0)), ("lif2", 2, (1, 0))]
    assert placement.tiles_used == 2 and placement.cores[0].route_hops == (0, 1)
    budget = estimate(counts_of(FEED_FORWARD), placement, chip)
    assert budget.energy_terms == pytest.approx({"synaptic": 11 * E_SYN, "neuron_active": 8 * E_ACT,
                                                 "neuron_inactive": 2 * E_INACT, "spike": 0.0,
                                                 "hop_ew": 0.0, "hop_ns": E_NS}, rel=1e-12)
    # step 0: core 0 holds 2 of lif1's 3 neurons and 4 of its 6 synapses: receive 2 events x 3.5 = 7 ns,
    #         send 2 active x 8.4 = 16.8 ns (core 2 also 16.8 ns); lif1 spiked: + one north-south hop, 6.5 ns.
    # step 1: core 0: receive 4 x 3.5 = 14 ns, send 2/3 x 2 x 8.4 + 2/3 x 5.3 = 14.733 ns; no spike crossed a tile.
    lat0 = 2 * T_ACT + 6.5 * NS
    lat1 = 2 / 3 * 2 * T_ACT + 2 / 3 * T_INACT
    assert budget.latency_per_step == pytest.approx([lat0 + barrier(2), lat1 + barrier(2)], rel=1e-12)
    assert budget.latency_terms["network"] == pytest.approx(6.5 * NS, rel=1e-12)


SANAFE_STYLE = {  # SANA-FE 2.2.9's Loihi constants, typed here (sanafe/examples/loihi.yaml)
    "energy": {"e_syn_op": (35.5, "pJ"), "e_neuron_active": (72.8, "pJ"), "e_neuron_inactive": (51.2, "pJ"),
               "e_spike_out": (69.3, "pJ"), "e_message": (111.0, "pJ"), "e_hop_ew": (3.0, "pJ"),
               "e_hop_ns": (4.2, "pJ")},
    "latency": {"t_syn_op": (3.8, "ns"), "t_neuron_active": (9.7, "ns"), "t_neuron_inactive": (6.0, "ns"),
                "t_spike_out": (30.0, "ns"), "t_message_out": (5.1, "ns"), "t_message_in": (16.0, "ns"),
                "t_hop_ew": (4.1, "ns"), "t_hop_ns": (6.5, "ns"), "t_barrier_tiles_1": (0.6, "us"),
                "t_barrier_tiles_2": (1.0, "us"), "t_barrier_tiles_4": (1.4, "us"), "t_barrier_tiles_29": (1.8, "us")},
}


def test_inputs_on_cores_messages_spike_out_and_a_barrier_table_by_hand(tmp_path):
    """SANA-FE's cost structure: inputs are spike sources on a core, every message costs e_message
    (111 pJ) to send and t_message_in (16 ns) to receive, every spike fired e_spike_out, and the barrier
    is a step function of the tiles in use. Tiles of 2 cores: inputs core 0 and lif1 core 1 (tile 0),
    lif2 core 2 (tile 1, one hop north)."""
    chip = _profile(tmp_path, "loihi", "sanafe-style", {"cores_per_tile": 2, "mesh_rows": 4, "inputs_on_cores": True},
                    **SANAFE_STYLE)
    placement = map_to_cores(program(recurrent=False), chip)
    assert [(c.layer, c.position) for c in placement.cores] == [("input", (0, 0)), ("lif1", (0, 0)), ("lif2", (1, 0))]
    budget = estimate(counts_of(FEED_FORWARD), placement, chip)
    pj = {k: v * PJ for k, (v, _) in SANAFE_STYLE["energy"].items()}
    # inputs: 3 spikes, 3 messages to lif1 (no spike_out: a source, not a neuron); lif1: 9 events, 5 active,
    # 1 inactive, 1 spike -> 1 message and 1 hop north; lif2: 2 events, 3 active, 1 inactive, 1 spike off chip.
    assert budget.energy_terms == pytest.approx({
        "synaptic": 11 * pj["e_syn_op"], "neuron_active": 8 * pj["e_neuron_active"],
        "neuron_inactive": 2 * pj["e_neuron_inactive"], "spike_out": 2 * pj["e_spike_out"],
        "message": 4 * pj["e_message"], "hop_ew": 0.0, "hop_ns": pj["e_hop_ns"]}, rel=1e-12)
    assert budget.energy_complete is False and budget.unknown == ["static: profile 'sanafe-style' has no static power "
                                                                  "'p_static'"]
    # step 0: lif1's core: receive 1 message x 16 + 3 x 3.8 = 27.4 ns; send 3 x 9.7 + 1 x 30 + 1 message x
    #         5.1 = 64.2 ns; + lif1's route north 6.5 ns, + the barrier of 2 tiles, 1.0 us
    # step 1: lif1's core: receive 2 x 16 + 6 x 3.8 = 54.8 ns; send 2 x 9.7 + 1 x 6.0 = 25.4 ns (lif2's
    #         send: 9.7 + 6 + 30 = 45.7 ns)
    assert budget.latency_per_step == pytest.approx([(64.2 + 6.5 + 1000) * NS, (54.8 + 1000) * NS], rel=1e-12)
    assert budget.latency_terms["barrier"] == pytest.approx(2e-6, rel=1e-12)


def test_barrier_is_over_tiles_a_range_interpolated_or_a_table_stepped(tmp_path):
    """Davies et al.: 113-465 ns over 1-32 tiles, linear between (our reading); SANA-FE: its table
    {1: 0.6, 2: 1.0, 4: 1.4, 29: 1.8} us, the entry of the largest count at or below the tiles in use."""
    from spikestack.energy.barrier import barrier_seconds

    loihi, notes = load_profile("loihi"), []
    assert [barrier_seconds(loihi, n, notes) for n in (1, 2, 32, 40)] == pytest.approx(
        [113 * NS, barrier(2), 465 * NS, 465 * NS], rel=1e-12)
    assert notes == ["barrier: 40 tiles is beyond the published 1-32 range: the 32-tile figure is used"]
    table = _profile(tmp_path, "loihi", "table", {}, latency={k: v for k, v in SANAFE_STYLE["latency"].items()
                                                             if k.startswith("t_barrier")})
    assert [barrier_seconds(table, n, []) for n in (1, 2, 3, 4, 28, 29, 32)] == pytest.approx(
        [0.6e-6, 1.0e-6, 1.0e-6, 1.4e-6, 1.4e-6, 1.8e-6, 1.8e-6], rel=1e-12)


def test_spikes_shared_among_a_layers_cores_by_activity_by_hand(tmp_path):
    """`activity` (spikes per neuron) gives each core of a layer its own share of the layer's spikes.
    SANA-FE-style constants, 2 neurons a core, tiles of 2 cores: inputs core 0 and lif1's neurons 0-1 on
    core 1 (tile 0); lif1's neuron 2 on core 2 and lif2 on core 3 (tile 1, one hop north)."""
    chip = _profile(tmp_path, "loihi", "sanafe-small", {"cores_per_tile": 2, "mesh_rows": 4, "inputs_on_cores": True,
                                                         "neurons_per_core": 2}, **SANAFE_STYLE)
    placement = map_to_cores(program(recurrent=False), chip)
    assert [(c.layer, c.neurons, c.position) for c in placement.cores] == \
        [("input", 2, (0, 0)), ("lif1", 2, (0, 0)), ("lif1", 1, (1, 0)), ("lif2", 2, (1, 0))]
    budget = estimate(counts_of(FEED_FORWARD), placement, chip, activity={"lif1": np.array([0, 0, 3])})
    # lif1's one spike is neuron 2's, on core 2, in lif2's tile: no hop. The inputs' 3 spikes each reach
    # both lif1 cores, one of them a tile north: 3 hops.
    assert budget.energy_terms["hop_ns"] == pytest.approx(3 * 4.2 * PJ, rel=1e-12)
    # step 0, core 2: send 1 active x 9.7 + 1 spike x 30 + 1 message x 5.1 = 44.8 ns, the slowest (core 1:
    # receive 16 + 2 x 3.8 = 23.6 ns, send 2 x 9.7 = 19.4 ns); + the inputs' route north, 6.5 ns; + 1.0 us.
    assert budget.latency_per_step[0] == pytest.approx((44.8 + 6.5 + 1000) * NS, rel=1e-12)
    uniform = estimate(counts_of(FEED_FORWARD), placement, chip)  # core 1 would hold 2/3 of the spike
    assert uniform.energy_terms["hop_ns"] == pytest.approx((3 + 2 / 3) * 4.2 * PJ, rel=1e-12)
    assert uniform.latency_per_step[0] == pytest.approx((2 * 9.7 + 2 / 3 * 35.1 + 6.5 + 1000) * NS, rel=1e-12)
