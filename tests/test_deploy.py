"""`spikestack deploy` on the NIR paper's graphs and a tiny digits network: every report file, each
section, the backends that ran or why not, agreement with Lava, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from conftest import GRAPHS
from spikestack.backends.lava import lava_unavailable_reason
from spikestack.cli import main
from spikestack.errors import BackendUnavailableError, DataError
from spikestack.frontend.data import load_digits
from spikestack.ir.run import Run
from spikestack.pipeline import deploy
from spikestack.report import compare_spikes

SECTIONS = ("## Graph", "## Agreement between backends", "## Energy and latency per chip", "## Per-layer breakdown",
            "## Spike raster", "## SNN vs ANN", "## Quantisation error per layer")


def _input(tmp_path, shape, p=0.1, seed=0, graded=False):
    rng = np.random.default_rng(seed)
    x = rng.random(shape).astype(np.float32) if graded else (rng.random(shape) < p).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    return str(path)


def _deploy(argv, out):
    assert main(["deploy", *argv, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    markdown = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for title in SECTIONS:
        assert title in markdown, title
    assert "data:image/png;base64," in html and "<link" not in html and "<script" not in html  # self-contained
    return report, markdown


def digits_graph(path):
    """Input 64 -> Affine -> IF 10 -> Output, a nearest-centroid classifier of digits (about 0.7 accurate
    at 8 steps): takes digits samples as they are, (64,), and spikes enough to draw tall bars. dt = 1."""
    data = load_digits()
    centroids = np.stack([data.x_train[data.y_train == c].mean(axis=0) for c in range(10)])
    weight = centroids - centroids.mean(axis=0)
    weight = 4 * weight / np.abs(weight).sum(axis=1, keepdims=True)
    nodes = {"input": nir.Input(input_type={"input": np.array([64])}),
             "fc": nir.Affine(weight=weight.astype(np.float32), bias=np.zeros(10, np.float32)),
             "if": nir.IF(r=np.ones(10), v_threshold=np.ones(10)),
             "output": nir.Output(output_type={"output": np.array([10])})}
    edges = [("input", "fc"), ("fc", "if"), ("if", "output")]
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return path


def test_lif_norse_on_every_chip_and_on_lava(fixtures_dir, tmp_path, capsys):
    x = _input(tmp_path, (60, 2, 1), p=0.3)
    report, markdown = _deploy([str(GRAPHS["lif_norse"]), "--preset", "norse@1.0", "--dt", "1e-4", "--input", x,
                                "--samples", "2"], tmp_path / "out")
    shipped = {"loihi", "loihi2", "truenorth", "speck", "spinnaker2", "xylo-audio2", "ann-45nm-fp32", "ann-45nm-int8"}
    assert set(report["chips"]) == shipped
    rows = {b["name"]: b for b in report["backends"]}
    assert rows["simulator float"]["status"] == rows["simulator loihi"]["status"] == "ok"
    assert rows["simulator float"]["samples"] == 2 and report["quantisation"]["status"] == "ok"
    assert report["snn_vs_ann"]["ann"]["ann-45nm-fp32"]["one_pass_j"] > 0
    if lava_unavailable_reason() is None:  # Lava runs the same two samples; both arithmetics agree exactly
        assert rows["lava float"]["status"] == rows["lava loihi"]["status"] == "ok"
        assert [a["identical"] for a in report["agreement"]] == [True, True], report["agreement"]
        assert markdown.count(": identical") == 2
    else:
        assert rows["lava float"]["status"].startswith("skipped: Lava backend unavailable")
    printed = capsys.readouterr().out
    assert "backends on the given array" in printed and "loihi2" in printed  # no labels: outputs, then chips


def test_cnn_sinabs_names_the_chip_that_does_not_fit(fixtures_dir, tmp_path):
    x = _input(tmp_path, (8, 2, 2, 34, 34), p=0.05)
    report, markdown = _deploy([str(GRAPHS["cnn_sinabs"]), "--preset", "sinabs", "--input", x, "--backend", "sim"],
                               tmp_path / "out")
    assert not report["chips"]["truenorth"]["fits"] and report["chips"]["loihi"]["fits"]
    assert "layer '6'" in markdown  # the violation, named in the chip table
    assert set(report["quantisation"]["errors"]) >= {"0", "9", "12"} and report["agreement"] == []
    assert {r["node"] for r in report["layers"]} == {"1", "3", "6", "10", "12"}
    # NeuroBench's metrics of the priced run: its synaptic operations leave the pools out of ours
    synops, ops = report["neurobench"]["SynapticOperations"], report["operations"]
    assert 0 < synops["Effective_ACs"] + synops["Effective_MACs"] <= ops["effective_acs"] + ops["effective_macs"]
    assert 0 < synops["Dense"] <= ops["dense_macs"] and 0 < report["neurobench"]["ActivationSparsity"] < 1
    assert (tmp_path / "out" / "energy" / "spike_raster.png").is_file()


def test_braille_reports_loihi_unsupported_and_goes_on(fixtures_dir, tmp_path):
    x = _input(tmp_path, (30, 2, 12), graded=True)
    report, markdown = _deploy([str(GRAPHS["braille"]), "--preset", "snntorch", "--reset", "zero", "--input", x,
                                "--backend", "sim", "--chip", "loihi", "--chip", "ann-45nm-fp32"], tmp_path / "out")
    rows = {b["name"]: b for b in report["backends"]}
    assert rows["simulator float"]["status"] == "ok"
    assert rows["simulator loihi"]["status"].startswith("unsupported: node 'lif1.lif'")
    assert "loihi: unsupported: node 'lif1.lif'" in markdown  # snnTorch's delayed reset
    assert report["chips"]["loihi"]["energy_j"] > 0


def test_dataset_accuracy_per_backend(tmp_path):
    graph = digits_graph(tmp_path / "digits.nir")
    report = deploy(graph, tmp_path / "out", dataset="digits", steps=8, limit=40, backend="sim", dt=1.0,
                    dt_seconds=1e-3, chips=["loihi"], echo=lambda _: None, progress=False)
    rows = {b["name"]: b for b in report["backends"]}
    for name in ("simulator float", "simulator loihi"):  # chance is 0.1
        assert rows[name]["samples"] == 40 and 0.5 < rows[name]["accuracy"] <= 1.0, rows[name]
    assert report["input"]["steps"] == 8 and report["input"]["dataset"] == "digits"
    assert list(report["plots"])[0] == "accuracy" and (tmp_path / "out" / "accuracy.png").is_file()


def test_each_chip_profile_is_parsed_and_placed_once(tmp_path, monkeypatch):
    """One parse and one placement per chip, whether it fits or not: the map step, the estimate and
    the report all use that placement (a network that does not fit is not placed again for its list)."""
    import yaml

    from spikestack.energy import mapping, profile
    from spikestack.pipeline import stages

    tiny = yaml.safe_load((profile.PROFILE_DIR / "loihi.yaml").read_text())
    tiny["name"] = "tiny"
    tiny["limits"]["cores"]["value"], tiny["limits"]["neurons_per_core"]["value"] = 1, 5  # 10 neurons: no fit
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    calls: dict[str, list[str]] = {"load_profile": [], "parse": [], "map_to_cores": [], "place": []}

    def counted(module, name: str, key: str, chip) -> None:
        inner = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[key].append(chip(*args))
            return inner(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counted(stages, "load_profile", "load_profile", lambda name: str(name))
    counted(profile, "_read_yaml", "parse", lambda path: path.stem)  # every parse, whoever asks for it
    counted(stages, "map_to_cores", "map_to_cores", lambda program, chip, *rest: chip.name)
    counted(mapping, "_place", "place", lambda program, chip, *rest: chip.name)  # check_fit's too
    x = (np.random.default_rng(4).random((6, 2, 64)) < 0.3).astype(np.float32)
    report = deploy(digits_graph(tmp_path / "digits.nir"), tmp_path / "out", x=x, dt=1.0, backend="sim",
                    chips=["loihi", str(tmp_path / "tiny.yaml")], echo=lambda _: None, progress=False)
    assert calls == {"load_profile": ["loihi", str(tmp_path / "tiny.yaml")], "parse": ["loihi", "tiny"],
                     "map_to_cores": ["loihi", "tiny"], "place": ["loihi", "tiny"]}
    assert report["chips"]["loihi"]["fits"] and report["chips"]["loihi"]["energy_j"] > 0
    violations = json.loads((tmp_path / "out" / "energy" / "energy.json").read_text())["chips"]["tiny"]["violations"]
    assert not report["chips"]["tiny"]["fits"] and report["chips"]["tiny"]["violations"] == violations
    assert violations and all("cores" in v for v in violations), violations


def test_dataset_must_match_the_graph_input(fixtures_dir, tmp_path):
    expected = r"takes samples of shape \(2, 34, 34\), but digits samples are \(1, 8, 8\) \(or \(64,\) flattened\)"
    with pytest.raises(DataError, match=expected):
        deploy(GRAPHS["cnn_sinabs"], tmp_path / "out", dataset="digits", preset="sinabs", echo=lambda _: None)


def test_malformed_file_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))  # an HDF5 signature, then nothing readable
    x = _input(tmp_path, (5, 1, 1))
    assert main(["deploy", str(bad), "--dt", "1e-3", "--input", x, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spikestack deploy: error: ") and "bad.nir" in err
    assert not (tmp_path / "out").exists()  # nothing written for a file that does not validate


def test_first_divergence_names_step_node_and_neuron():
    spikes = np.zeros((6, 2, 3), dtype=np.float32)
    a = Run({"o": spikes}, {"n1": {"s": spikes.copy()}, "n2": {"s": spikes.copy()}})
    b = Run({"o": spikes}, {"n1": {"s": spikes.copy()}, "n2": {"s": spikes.copy()}})
    assert compare_spikes(a, b, ["n1", "n2"])["identical"]
    b.recordings["n2"]["s"][2, 1, 0] = 1  # n2 differs first (step 2) although n1 comes first in order
    b.recordings["n1"]["s"][4, 0, 2] = 1
    result = compare_spikes(a, b, ["n1", "n2"], label="x vs y")
    assert not result["identical"] and result["differences"] == {"n1": 1, "n2": 1}
    assert result["first_divergence"] == {"step": 2, "node": "n2", "sample": 1, "neuron": 0}
    b.recordings["n1"]["s"][2, 0, 1] = 1  # a tie at step 2: the node earlier in program order wins
    assert compare_spikes(a, b, ["n1", "n2"])["first_divergence"]["node"] == "n1"


def test_without_lava_the_report_says_skipped_and_why(fixtures_dir, tmp_path, monkeypatch):
    import spikestack.pipeline.deployment as deployment

    monkeypatch.setattr(deployment, "_lava_reason", lambda: "Lava backend unavailable: no Lava here")
    x = (np.random.default_rng(1).random((40, 1, 1)) < 0.3).astype(np.float32)
    report = deploy(GRAPHS["lif_norse"], tmp_path / "out", x=x, preset="norse@1.0", dt=1e-4, chips=["loihi"],
                    echo=lambda _: None, progress=False)
    rows = {b["name"]: b for b in report["backends"]}
    skipped = "skipped: Lava backend unavailable: no Lava here"
    assert rows["lava float"]["status"] == rows["lava loihi"]["status"] == skipped
    assert [a["status"] for a in report["agreement"]] == [rows["lava float"]["status"]] * 2
    assert "lava float: skipped: Lava backend unavailable" in (tmp_path / "out" / "report.md").read_text()
    with pytest.raises(BackendUnavailableError, match="no Lava here"):  # Lava alone was asked for
        deploy(GRAPHS["lif_norse"], tmp_path / "out2", x=x, preset="norse@1.0", dt=1e-4, backend="lava", echo=print)


@pytest.mark.skipif(lava_unavailable_reason() is not None, reason=lava_unavailable_reason() or "")
def test_lava_alone_quantises_from_its_own_float_run(fixtures_dir, tmp_path):
    x = (np.random.default_rng(2).random((40, 1, 1)) < 0.3).astype(np.float32)
    report = deploy(GRAPHS["lif_norse"], tmp_path / "out", x=x, preset="norse@1.0", dt=1e-4, backend="lava",
                    chips=["loihi"], echo=lambda _: None, progress=False)
    assert [b["name"] for b in report["backends"]] == ["lava float", "lava loihi"]
    assert all(b["status"] == "ok" and b["samples"] == 1 for b in report["backends"])
    assert report["agreement"] == [] and report["quantisation"]["status"] == "ok"
    assert report["chips"]["loihi"]["energy_j"] > 0  # priced from Lava's own counts


def test_chunks_add_up_to_one_run(fixtures_dir, monkeypatch):
    """A chunk per sample (a tiny CHUNK_BYTES) gives the outputs, counts and predictions of one run."""
    import spikestack.pipeline.deployment as deployment
    from spikestack.pipeline import load_program, predict, simulate_all
    from spikestack.simulators import simulate

    program = load_program(GRAPHS["braille"], "snntorch", reset="zero", reset_timing="immediate")
    x = (np.random.default_rng(3).random((30, 4, 12)) < 0.2).astype(np.float32)
    whole = simulate(program, x, record=("lif2",))
    monkeypatch.setattr(deployment, "CHUNK_BYTES", 1)
    run, predictions, headroom, first_x = simulate_all(program, deployment.deploy_input(program, x), "float",
                                                       ("lif1.lif", "lif2"), progress=False)
    np.testing.assert_array_equal(run.output, whole.output)
    assert first_x.shape == (30, 1, 12) and run.recordings["lif2"]["s"].shape == (30, 1, 7)  # first chunk only
    np.testing.assert_array_equal(predictions, predict(whole, program))
    for node, metrics in whole.counts.per_node.items():
        for metric, values in metrics.items():
            np.testing.assert_array_equal(run.counts.per_node[node][metric], values, err_msg=f"{node} {metric}")
    assert set(headroom) == {"lif1.lif", "lif2"}


def test_summary_fits_column_says_what_the_report_says(tmp_path, capsys):
    """A chip whose profile gives no limits is placed without a check: the terminal summary says "not
    checked", as report.md does, never "yes" (issue 21)."""
    import yaml

    from spikestack.energy import profile

    free = yaml.safe_load((profile.PROFILE_DIR / "loihi.yaml").read_text())
    free["name"], free["limits"] = "free", {}
    (tmp_path / "free.yaml").write_text(yaml.safe_dump(free))
    x = (np.random.default_rng(4).random((6, 2, 64)) < 0.3).astype(np.float32)
    deploy(digits_graph(tmp_path / "digits.nir"), tmp_path / "out", x=x, dt=1.0, backend="sim",
           chips=["loihi", str(tmp_path / "free.yaml"), "ann-45nm-fp32"], echo=print, progress=False)
    printed = capsys.readouterr().out.splitlines()
    markdown = (tmp_path / "out" / "report.md").read_text().splitlines()
    said = {}
    for chip in ("loihi", "free", "ann-45nm-fp32"):
        summary = next(line for line in printed if line.startswith(chip + " "))
        row = next(line for line in markdown if line.startswith(f"| {chip} |"))
        said[chip] = (summary[16:28].strip(), row.split("|")[2].strip())  # columns: chip 15 wide, fits 12
    assert said == {"loihi": ("yes", "yes"), "free": ("not checked", "not checked"),
                    "ann-45nm-fp32": ("baseline", "baseline")}, said
