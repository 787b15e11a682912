"""The CLI commands end to end on the NIR paper's graphs: files written, exit codes, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import GRAPHS
from spikestack.cli import main


@pytest.fixture()
def cnn_input(tmp_path):
    x = (np.random.default_rng(0).random((20, 2, 2, 34, 34)) < 0.05).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    return path


def test_run_writes_outputs_and_counts(fixtures_dir, cnn_input, tmp_path, capsys):
    out, stats = tmp_path / "o.npz", tmp_path / "s.json"
    argv = ["run", str(GRAPHS["cnn_sinabs"]), "--preset", "sinabs", "--input", str(cnn_input), "--out", str(out),
            "--stats", str(stats), "--record", "12"]
    assert main(argv) == 0
    arrays = np.load(out)
    assert arrays["output"].shape == (20, 2, 10) and arrays["12.v"].shape == (20, 2, 10)
    counts = json.loads(stats.read_text())["counts"]
    # Affine 11 (256 -> 10): every spike of IF 10 reaches 10 synapses (Sinabs convention, by hand)
    assert counts["11"]["synaptic_events"]["total"] == 10 * counts["10"]["spikes_out"]["total"]


def test_run_rejects_a_wrong_input_shape(fixtures_dir, tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((5, 1, 3)))
    assert main(["run", str(GRAPHS["lif_norse"]), "--preset", "norse@1.0", "--input", str(bad), "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected shape (T, B, 1)" in err


def test_map_fits_and_oversized_graph_exits_2(fixtures_dir, capsys):
    assert main(["map", str(GRAPHS["cnn_sinabs"]), "--preset", "sinabs", "--chip", "loihi", "--json"]) == 0
    placement = json.loads(capsys.readouterr().out)
    assert placement["cores_used"] == 15  # hand count in tests/energy/test_mapping.py
    assert main(["map", str(GRAPHS["cnn_sinabs"]), "--preset", "sinabs", "--chip", "truenorth"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layer '6'" in err and "input_axons_per_core=256" in err


def test_energy_writes_reports(fixtures_dir, cnn_input, tmp_path, capsys):
    out = tmp_path / "energy"
    argv = ["energy", str(GRAPHS["cnn_sinabs"]), "--preset", "sinabs", "--input", str(cnn_input), "--chip", "loihi",
            "--chip", "truenorth", "--dt-seconds", "1e-3", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "energy.json").read_text())
    assert report["chips"]["loihi"]["fits"] and not report["chips"]["truenorth"]["fits"]
    assert (out / "energy.md").exists() and list(out.glob("*.png"))


def test_unknown_chip_is_one_line(fixtures_dir, capsys):
    assert main(["map", str(GRAPHS["lif_norse"]), "--preset", "norse@1.0", "--chip", "loihi9"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_unsupported_primitive_for_a_backend_is_one_line(tmp_path, capsys):
    """A Threshold straight after the Input runs in the simulator's loihi mode, but Lava needs a
    synapse before every neuron (the Threshold runs as one): the Lava run names the node.
    (Without Lava, the one line says why the backend is unavailable instead.)"""
    import nir

    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([3])}),
               "thr": nir.Threshold(threshold=np.full(3, 0.5)), "output": nir.Output(output_type={"output": np.array([3])})},
        edges=[("input", "thr"), ("thr", "output")], type_check=False)
    path, x = tmp_path / "thr.nir", tmp_path / "x.npy"
    nir.write(path, graph)
    np.save(x, np.ones((4, 1, 3), np.float32))
    argv = ["run", str(path), "--dt", "1", "--input", str(x), "--out", str(tmp_path / "o.npz"), "--mode", "loihi"]
    assert main(argv) == 0
    capsys.readouterr()  # the run's own output (and, on a first run, the engine's compile note)
    assert main(argv + ["--backend", "lava"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    from spikestack.backends.lava import lava_unavailable_reason

    assert ("node 'thr'" in err and "has no synapse op" in err) if lava_unavailable_reason() is None else "Lava backend unavailable" in err


@pytest.mark.parametrize("mode", ["float", "loihi"])
def test_engine_option_chooses_the_engine_and_both_agree(mode, fixtures_dir, cnn_input, tmp_path, capsys, monkeypatch):
    """--engine before or after the command's name; the two engines write the same spikes and counts."""
    import spikestack.cli as cli

    compiled = iter([0.0, 12.5, 12.5, 12.5])  # the engine's compile time before and after each command
    monkeypatch.setattr(cli, "compile_seconds", lambda: next(compiled))
    results = {}
    for engine, where in (("compiled", "after"), ("reference", "before")):
        out, stats = tmp_path / f"{engine}.npz", tmp_path / f"{engine}.json"
        argv = ["run", str(GRAPHS["cnn_sinabs"]), "--preset", "sinabs", "--input", str(cnn_input), "--out", str(out),
                "--stats", str(stats), "--mode", mode]
        argv = argv + ["--engine", engine] if where == "after" else ["--engine", engine] + argv
        assert main(argv) == 0
        results[engine] = (np.load(out)["output"], json.loads(stats.read_text())["counts"])
    np.testing.assert_array_equal(results["compiled"][0], results["reference"][0])
    assert results["compiled"][1] == results["reference"][1]
    err = capsys.readouterr().err
    assert err.count("note: the compiled engine compiled its kernels in 12.5 s (cached on disk") == 1, err
    assert main(["run", str(GRAPHS["cnn_sinabs"]), "--engine", "fast"]) == 2


def test_a_compiled_run_leaves_multiprocessing_unset_for_lava():
    """numba's thread start fixes multiprocessing's start method, which made Lava's import fail in
    the same process ("context has already been set"); a compiled run leaves it as it found it."""
    import subprocess
    import sys

    code = ("import multiprocessing as mp, numpy as np, nir; "
            "from spikestack.ir import build_graph, lower_graph, resolve_options; "
            "from spikestack.simulators import simulate; "
            "g = nir.NIRGraph(nodes={'input': nir.Input(input_type={'input': np.array([4])}), "
            "'lif': nir.IF(r=np.ones(4), v_threshold=np.ones(4), v_reset=np.zeros(4)), "
            "'output': nir.Output(output_type={'output': np.array([4])})}, "
            "edges=[('input', 'lif'), ('lif', 'output')], type_check=False); "
            "p = lower_graph(build_graph(g), resolve_options(dt=1e-3)); before = mp.get_start_method(allow_none=True); "
            "simulate(p, np.ones((5, 3, 4), np.float32), engine='compiled'); "
            "print(before, mp.get_start_method(allow_none=True))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "None None"
