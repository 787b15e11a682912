"""Energy reports: energy.json and energy.md per chip (fits or violations, energy, latency, per layer,
which constants dominate, unknowns) and the PNG plots, rendered by `report.energy`; the pipeline's
`energy_report` on profiles loaded and placed once, as the CLI calls it."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from spikestack.energy import estimate, load_profile, map_to_cores
from spikestack.errors import OptionsError
from spikestack.ir import METRICS, Counts, LoweringOptions, Run, build_graph, lower_graph
from spikestack.ir.validate import validate_graph
from spikestack.pipeline.stages import energy_report, load_profiles, place_on_chips
from spikestack.report.energy import si, write_energy_report

PNG = b"\x89PNG\r\n\x1a\n"


def program(n_in: int = 2):
    """input -> fc1 -> lif1 (3) -> fc2 -> lif2 (2) -> output, as in test_model.py."""
    def lif(n):
        return nir.LIF(tau=np.full(n, 0.01), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n))

    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "fc1": nir.Affine(weight=np.ones((3, n_in), np.float32), bias=np.zeros(3, np.float32)), "lif1": lif(3),
             "fc2": nir.Affine(weight=np.ones((2, 3), np.float32), bias=np.zeros(2, np.float32)), "lif2": lif(2),
             "output": nir.Output(output_type={"output": np.array([2])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    graph = validate_graph(build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)))
    return lower_graph(graph, LoweringOptions(dt=1e-3))


def counts() -> Counts:
    """test_model.py's FEED_FORWARD counts: two steps, one sample."""
    table = {"input": {"spikes_out": [1, 2]}, "fc1": {"synaptic_events": [3, 6]},
             "lif1": {"neuron_updates": [3, 3], "active_neuron_updates": [3, 2], "spikes_out": [1, 0]},
             "fc2": {"synaptic_events": [2, 0]},
             "lif2": {"neuron_updates": [2, 2], "active_neuron_updates": [2, 1], "spikes_out": [0, 1]}}
    return Counts({n: {m: np.array(v.get(m, [0, 0]), np.int64).reshape(2, 1) for m in METRICS}
                   for n, v in table.items()})


def report_on(prog, run: Run, chips: list[str], out_dir) -> dict:
    """The pipeline's steps in order: profiles loaded once, placed once, then estimated and written."""
    profiles = load_profiles(chips)
    return energy_report(prog, run, profiles, place_on_chips(prog, profiles), out_dir)


def test_si_prefixes():
    assert si(1.7051829e-07, "J") == "171 nJ"
    assert si(23.6e-12, "J", lower_bound=True) == "≥ 23.6 pJ"
    assert si(None, "s") == "unknown" and si(0.0, "J") == "0 J" and si(2e-3, "s") == "2 ms"


def test_write_energy_report_files(tmp_path):
    prog, count = program(), counts()
    loihi = load_profile("loihi")
    budgets = {"loihi": estimate(count, map_to_cores(prog, loihi), loihi),
               "tiny-chip": ["layer 'lif1': 3 > neurons_per_core=2 with 1 core(s)"]}
    spikes = {"lif1": np.zeros((2, 1, 3)), "lif2": np.ones((2, 1, 2))}
    report = write_energy_report(budgets, tmp_path, count, spikes=spikes)
    data = json.loads((tmp_path / "energy.json").read_text())
    assert data == json.loads(json.dumps(report))
    assert data["chips"]["tiny-chip"] == {"fits": False, "violations": budgets["tiny-chip"]}
    entry = data["chips"]["loihi"]
    assert entry["fits"] and entry["energy_j"] == pytest.approx(budgets["loihi"].energy_j)
    assert entry["dominant"] == "neuron_active" and set(entry["per_layer"]) == {"lif1", "lif2"}
    assert len(entry["energy_per_step"]) == 2 and data["counts"]["fc1"]["synaptic_events"]["total"] == 9
    markdown = (tmp_path / "energy.md").read_text()
    assert "| loihi | yes | ≥ 1.01 nJ | 275 ns | neuron_active (64% of energy) | 2 |" in markdown  # one tile: no hop
    assert "## tiny-chip: does not fit" in markdown and "3 > neurons_per_core=2" in markdown
    assert "static: profile 'loihi' has no static power 'p_static'" in markdown
    for name in ("energy_per_layer.png", "spike_raster.png", "energy_per_step.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
        assert f"({name})" in markdown


def test_energy_report_for_the_cli(tmp_path):
    prog = program()
    run = Run(outputs={"output": np.zeros((2, 1, 2))}, counts=counts())
    report = report_on(prog, run, ["loihi", "speck", "xylo-audio2", "ann-45nm-fp32"], tmp_path)
    assert report["dt_seconds"] == 1e-3 and report["steps"] == 2  # dt of the lowering options, in seconds
    chips = report["chips"]
    assert chips["speck"]["fits"] and chips["speck"]["energy_j"] is None
    assert chips["xylo-audio2"]["energy_j"] == pytest.approx(291e-6 * 2e-3)
    assert chips["xylo-audio2"]["fit_checked"]  # Rockpool's pools: 16 inputs, 1000 hidden, 8 outputs
    assert "| xylo-audio2 | yes | 582 nJ | 2 ms |" in (tmp_path / "energy.md").read_text()
    assert chips["ann-45nm-fp32"]["extra"]["snn_ops_j"] == 0.0  # the table has no effective ops
    assert (tmp_path / "spike_raster.png").read_bytes()[:8] == PNG  # from the counts: nothing recorded


def test_energy_report_lists_violations_of_a_chip_that_cannot_hold_it(tmp_path):
    prog = program(n_in=300)  # 300 presynaptic neurons; a TrueNorth core has 256 axons
    run = Run(outputs={}, counts=counts())
    report = report_on(prog, run, ["truenorth"], tmp_path)
    assert report["chips"]["truenorth"] == {"fits": False, "violations": [
        "layer 'lif1': a single neuron exceeds a core (300 > input_axons_per_core=256)"]}


def test_energy_report_needs_counts(tmp_path):
    with pytest.raises(OptionsError, match="count=True"):
        report_on(program(), Run(outputs={}), ["loihi"], tmp_path)


def test_energy_report_shares_a_layers_spikes_by_the_recorded_spikes(tmp_path):
    """The recorded spikes per neuron go to the estimate as `activity`: with lif1 split over two cores
    (2 neurons a core) and its one spike recorded on neuron 2, the core holding neuron 2 sends it."""
    import yaml

    data = yaml.safe_load(open(load_profile("loihi").path))
    data["name"], data["limits"]["neurons_per_core"]["value"] = "small", 2
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(data))
    profiles = load_profiles([str(tmp_path / "small.yaml")])
    prog = program()
    s = np.zeros((2, 1, 3))
    s[0, 0, 2] = 1  # lif1's one spike (step 0) is neuron 2's, on the layer's second core
    run = Run(outputs={}, recordings={"lif1": {"s": s}}, counts=counts())
    placements = place_on_chips(prog, profiles)
    report = energy_report(prog, run, profiles, placements, tmp_path / "out")
    shared = estimate(counts(), placements["small"], profiles[0], 1e-3, activity={"lif1": np.array([0, 0, 1])})
    uniform = estimate(counts(), placements["small"], profiles[0], 1e-3)
    assert report["chips"]["small"]["latency_s"] == pytest.approx(shared.latency_s, rel=1e-12)
    assert shared.latency_s != pytest.approx(uniform.latency_s, rel=1e-6)
