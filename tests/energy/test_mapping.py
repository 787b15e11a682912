"""Placement on cores: cnn_sinabs.nir on Loihi against a count done by hand, Speck's padded memory
rule, the mesh, and ChipErrors that name the layer and the limit."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import yaml

from spikestack.energy import check_fit, find_layers, load_profile, map_to_cores
from spikestack.energy.mapping import mesh_grid, speck_memory
from spikestack.errors import ChipError
from spikestack.ir import LoweringOptions, build_graph, load_graph, lower_graph, resolve_options
from spikestack.ir.validate import validate_graph


@pytest.fixture(scope="module")
def cnn(fixtures_dir):
    graph = load_graph(fixtures_dir / "cnn_sinabs.nir")
    return lower_graph(graph, resolve_options(graph.metadata, preset="sinabs"))


def taps(o: int, k: int, s: int, p: int, n: int) -> int:
    """Kernel taps of output o that land inside an input of length n (padding holds no synapse)."""
    return sum(1 for j in range(k) if 0 <= o * s - p + j < n)


def conv_synapses(channels: range, positions, c_in: int, k: int, s: int, p: int, n: int, w: int) -> int:
    """Synapses of the neurons (c, y, x) of a conv output of width w, given as flat positions."""
    return sum(c_in * taps(pos // w, k, s, p, n) * taps(pos % w, k, s, p, n) for _ in channels for pos in positions)


def test_cnn_sinabs_on_loihi_matches_a_count_by_hand(cnn):
    placement = map_to_cores(cnn, load_profile("loihi"))
    cores = {name: placement.cores_of(name) for name in placement.layers}
    # Loihi: 1024 neurons, 1 Mbit = 1,048,576 bits of synapses, 4096 input and 4096 output axons per core;
    # weights 8 bits.
    # Layer '1' (Conv 2->16, 5x5, stride 2, pad 1 on 34x34 -> 16x16): per axis output 0 has 4 taps, 1..15 have 5,
    # so 4 + 15*5 = 79; synapses = 16 * 2 * 79 * 79 = 199,712. Neurons 4096 -> 4 cores of 1024 (=4 channels),
    # but every neuron of '1' reaches all 5 cores of layer '3' (each holds whole output channels, which read
    # every input position), so 1024 * 5 = 5120 output axons > 4096; 5 cores: 820 * 5 = 4100 > 4096;
    # 6 cores: 683 * 5 = 3415 fits. Core 0 = neurons 0..682: channels 0, 1 (2 * 2 * 79 * 79 = 24,964) and
    # channel 2 rows 0..9 (2 * (4 + 9*5) * 79 = 7,742) and row 10, columns 0..10 (2 * 5 * (4 + 10*5) = 540).
    assert [c.neurons for c in cores["1"]] == [683, 683, 683, 683, 682, 682]
    assert cores["1"][0].synapses == 24_964 + 7_742 + 540 == 33_246
    assert sum(c.synapses for c in cores["1"]) == 16 * 2 * 79 * 79 == 199_712
    assert cores["1"][0].input_axons == 2 * 34 * 34  # the 5x5 windows cover every input pixel
    assert cores["1"][0].output_axons == 683 * 5
    # Layer '3' (Conv 16->16, 3x3, pad 1 on 16x16): per axis 2 + 14*3 + 2 = 46 taps; per output channel
    # 16 * 46 * 46 = 33,856; total 16 * 33,856 = 541,696 synapses = 4,333,568 bits -> at least 5 cores.
    # 5 cores: 820, 819, 819, 819, 819 neurons; core 0 = channels 0..2 (3 * 33,856 = 101,568) + channel 3
    # rows 0..2 (16 * (2+3+3) * 46 = 5,888) + row 3 columns 0..3 (16 * 3 * (2+3+3+3) = 528) = 107,984
    # synapses = 863,872 bits <= 1,048,576. Each core holds whole channels: input axons = all 4096 of '1'.
    assert [c.neurons for c in cores["3"]] == [820, 819, 819, 819, 819]
    assert cores["3"][0].synapses == 101_568 + 5_888 + 528 == 107_984
    assert cores["3"][0].synapse_bits == 107_984 * 8
    assert sum(c.synapses for c in cores["3"]) == 16 * 16 * 46 * 46
    assert {c.input_axons for c in cores["3"]} == {4096}
    # Layer '6' (SumPool 2x2 then Conv 16->8, 3x3, pad 1 on 8x8): the pool folds into the synapses, so each
    # output reads 2 * (taps over the pooled axis) inputs per axis: 2*2 + 6*2*3 + 2*2 = 44.
    # 8 * 16 * 44 * 44 = 247,808 synapses = 1,982,464 bits -> 2 cores of 256 neurons (4 channels each):
    # 4 * 16 * 44 * 44 = 123,904 synapses = 991,232 bits.
    assert [(c.neurons, c.synapses) for c in cores["6"]] == [(256, 123_904)] * 2
    # Layer '10' (SumPool 2x2, Flatten, Affine 128->256): every one of the 512 neurons of '6' reaches every
    # neuron: 256 * 512 = 131,072 synapses = 1,048,576 bits, exactly one core's memory.
    assert [(c.neurons, c.synapses, c.synapse_bits, c.input_axons) for c in cores["10"]] == [
        (256, 131_072, 1_048_576, 512)]
    # Layer '12' (Affine 256->10): 10 * 256 = 2,560 synapses on one core.
    assert [(c.neurons, c.synapses) for c in cores["12"]] == [(10, 2_560)]
    assert placement.cores_used == 6 + 5 + 2 + 1 + 1 == 15
    assert check_fit(cnn, load_profile("loihi")) == []


def test_hand_count_helper_agrees_with_the_whole_layer(cnn):
    # The helper above, over every neuron of layer '3', gives the composed structural count.
    assert conv_synapses(range(16), range(256), 16, 3, 1, 1, 16, 16) == find_layers(cnn)["3"].synapses


def test_loihi_tiles_of_four_cores_on_a_mesh_four_high_and_hops_are_manhattan(cnn):
    """Loihi: 32 tiles of 4 cores on a mesh 4 tiles high, numbered up each column (SANA-FE's layout):
    core c is in tile c // 4, at row (c // 4) % 4, column (c // 4) // 4."""
    placement = map_to_cores(cnn, load_profile("loihi"))
    assert placement.grid == mesh_grid(32, 4) == (4, 8) and placement.cores_per_tile == 4
    assert [c.position for c in placement.cores[::4]] == [(0, 0), (1, 0), (2, 0), (3, 0)]
    assert placement.cores_used == 15 and placement.tiles_used == 4
    # Layer '3' ends on core 10 (tile 2); layer '6' is on cores 11 (tile 2) and 12 (tile 3): one message
    # in the tile, one to the tile north of it (one north-south hop).
    core = placement.cores[10]
    assert (core.layer, placement.cores[11].layer, placement.cores[12].layer) == ("3", "6", "6")
    assert (core.messages_per_spike, core.local_messages_per_spike) == (2.0, 1.0)
    assert (core.hops_ew_per_spike, core.hops_ns_per_spike, core.route_hops) == (0.0, 1.0, (0, 1))
    # Layer '10' (core 13) sends each spike to layer '12' on core 14, in its own tile: no hop.
    core = placement.cores[13]
    assert (core.messages_per_spike, core.local_messages_per_spike, core.hops_ns_per_spike) == (1.0, 1.0, 0.0)
    assert placement.cores[14].output_axons == 0  # the last layer's spikes leave the chip


def _wide_graph(n_in: int, n_out: int) -> nir.NIRGraph:
    lif = nir.LIF(tau=np.full(n_out, 0.01), r=np.ones(n_out), v_leak=np.zeros(n_out),
                  v_threshold=np.ones(n_out), v_reset=np.zeros(n_out))
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "fc": nir.Affine(weight=np.ones((n_out, n_in), np.float32), bias=np.zeros(n_out, np.float32)),
             "wide": lif, "output": nir.Output(output_type={"output": np.array([n_out])})}
    edges = [("input", "fc"), ("fc", "wide"), ("wide", "output")]
    graph = validate_graph(build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)))
    return lower_graph(graph, LoweringOptions(dt=1e-3))


def test_a_network_needing_more_cores_than_the_chip_names_layer_and_limit():
    program = _wide_graph(1, 129 * 1024)  # 129 cores of 1024 neurons; Loihi has 128
    with pytest.raises(ChipError, match=r"chip 'loihi'.*layer 'wide'.*cores=128") as err:
        map_to_cores(program, load_profile("loihi"))
    assert "129" in str(err.value)
    assert check_fit(program, load_profile("loihi")) == [
        "layer 'wide': needs cores up to #129, over cores=128 (the network needs 129)"]


def test_a_neuron_too_big_for_any_core_names_layer_and_limit():
    program = _wide_graph(5000, 2)  # each neuron has 5000 presynaptic neurons; a core takes 4096 axons
    with pytest.raises(ChipError, match=r"layer 'wide'.*5000 > input_axons_per_core=4096"):
        map_to_cores(program, load_profile("loihi"))
    # 3000 synapses of a neuron at 512 bits per weight = 1,536,000 bits > 1,048,576 bits of a core.
    problems = check_fit(_wide_graph(3000, 2), load_profile("loihi"), weight_bits=512)
    assert problems == ["layer 'wide': a single neuron exceeds a core (1536000 > synapse_memory_bits_per_core=1048576)"]


def test_recurrent_layer_counts_its_own_neurons_as_presynaptic(fixtures_dir):
    graph = load_graph(fixtures_dir / "braille_noDelay_bias_zero.nir")
    program = lower_graph(graph, resolve_options(graph.metadata, preset="snntorch"))
    layer = find_layers(program)["lif1.lif"]
    assert set(layer.inputs) == {"input", "lif1.lif"}
    assert layer.synapses == 38 * 12 + 38 * 38  # fc1 plus the recurrent w_rec
    assert layer.members == ("fc1", "lif1.lif", "lif1.w_rec") and layer.first
    placement = map_to_cores(program, load_profile("loihi"))
    own = placement.cores_of("lif1.lif")[0]
    # Each lif1 spike goes to its own core (recurrence) and to lif2's core next door, in the same tile.
    assert (own.messages_per_spike, own.local_messages_per_spike, own.hops_ew_per_spike, own.output_axons) == \
        (2.0, 2.0, 0.0, 38 * 2)


def test_speck_memory_rule_by_hand(cnn):
    layers = find_layers(cnn)
    # kernel = c * 2^(ceil log2(kx*ky) + ceil log2 f); neuron = f * 2^(ceil log2 h + ceil log2 w)
    expected = {
        "1": (2 * 32 * 16, 16 * 16 * 16),  # 5x5 = 25 -> 32, f 16; 16x16 output
        "3": (16 * 16 * 16, 16 * 16 * 16),  # 3x3 = 9 -> 16
        "6": (16 * 16 * 8, 8 * 8 * 8),
        "10": (8 * 16 * 256, 256),  # the Affine is a conv over the 8x4x4 before Flatten: c 8, 4x4 kernel
        "12": (256 * 1 * 16, 10),  # an Affine on a flat input: c 256, 1x1 kernel, f 10 -> 16
    }
    assert {n: speck_memory(layer, cnn) for n, layer in layers.items()} == expected
    assert speck_memory(layers["1"], cnn, padded=False) == (2 * 25 * 16, 4096)
    placement = map_to_cores(cnn, load_profile("speck"))
    kernel_memory = load_profile("speck").limits["kernel_memory_entries_per_core"]
    assert placement.cores_used == 5 and len({c.index for c in placement.cores}) == 5
    big = placement.cores_of("10")[0]  # 32 Ki kernel entries fit only cores 3..6
    assert kernel_memory[big.index] >= 32768 and big.memory["kernel_entries"] == 32768


def _speck_like(tmp_path, kernel_per_core: list[int]):
    profile = yaml.safe_load(open(load_profile("speck").path))
    profile["limits"]["kernel_memory_entries_per_core"]["value"] = kernel_per_core
    profile["limits"]["cores"]["value"] = len(kernel_per_core)
    profile["limits"]["neuron_memory_entries_per_core"]["value"] = [65536] * len(kernel_per_core)
    path = tmp_path / "speck-like.yaml"
    path.write_text(yaml.safe_dump(profile))
    return load_profile(path)


def test_speck_violations_name_layer_and_limit(cnn, tmp_path):
    problems = check_fit(cnn, _speck_like(tmp_path, [16384] * 9))
    assert problems == ["layer '10': 32768 entries > kernel_memory_entries_per_core (largest core 16384)"]
    with pytest.raises(ChipError, match=r"5 layers > cores=4"):
        map_to_cores(cnn, _speck_like(tmp_path, [65536] * 4))


def _mlp(n_in: int, n_hidden: int, n_out: int):
    """input -> fc1 -> lif1 (hidden) -> fc2 -> lif2 (feeds the output), dense weights of ones."""
    def lif(n):
        return nir.LIF(tau=np.full(n, 0.01), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n))

    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "fc1": nir.Affine(weight=np.ones((n_hidden, n_in), np.float32), bias=np.zeros(n_hidden, np.float32)),
             "lif1": lif(n_hidden),
             "fc2": nir.Affine(weight=np.ones((n_out, n_hidden), np.float32), bias=np.zeros(n_out, np.float32)),
             "lif2": lif(n_out), "output": nir.Output(output_type={"output": np.array([n_out])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    graph = validate_graph(build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)))
    return lower_graph(graph, LoweringOptions(dt=1e-3))


def test_xylo_pools_by_hand():
    """Xylo Audio 2 (Rockpool 3.1.0): 16 input channels, 1000 hidden neurons, 8 output neurons, one core."""
    xylo = load_profile("xylo-audio2")
    placement = map_to_cores(_mlp(16, 1000, 8), xylo)  # every pool exactly full
    assert placement.checked and placement.cores_used == 1 and [c.layer for c in placement.cores] == ["lif1", "lif2"]
    assert placement.notes[-1] == "Xylo: one core; 16 of 16 input channels, 1000 of 1000 hidden neurons, " \
                                  "8 of 8 output neurons"
    assert check_fit(_mlp(17, 1001, 9), xylo) == ["input 'input': 17 > input_channels=16",
                                                  "layer 'lif1': 1001 > hidden_neurons=1000",
                                                  "layer 'lif2': 9 > output_neurons=8"]


def test_spinnaker2_memory_and_cores_by_hand():
    """SpiNNaker2 datasheet: 152 cores of 128 KB; a synapse takes a 32-bit word: 32768 synapses a core."""
    spinnaker2 = load_profile("spinnaker2")
    # 100 inputs x 656 neurons = 65,600 synapses: 2 cores hold 65,536, so 3 cores (2,106,880 bits > 2 x 1 Mbit)
    placement = map_to_cores(_mlp(100, 656, 2), spinnaker2)
    assert placement.checked and [len(placement.cores_of(n)) for n in ("lif1", "lif2")] == [3, 1]
    assert max(c.synapse_bits for c in placement.cores_of("lif1")) <= 128 * 1024 * 8
    # 153 cores' worth: 1000 inputs x 5000 neurons = 5 M synapses = 153 cores of 32,768 (5e6 / 32768 = 152.6)
    problems = check_fit(_mlp(1000, 5000, 2), spinnaker2)
    assert len(problems) == 1 and "cores=152" in problems[0], problems
