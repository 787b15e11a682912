"""lava-dl 0.6.0 judges the netx backend (issue 20): its own `netx.hdf5.Network`, run in Lava's
fixed_pt simulator in the side environment `.venv-lavadl` (tests/peers/environments.py), must emit
exactly the spikes loihi mode emits, every layer, every step; and a file written by SLAYER's own
exporter must run in loihi mode, once imported, exactly as lava-dl runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from netx_graphs import GRAPHS, input_spikes
from spikestack.backends.netx import run_lava_dl
from spikestack.ir.quantise import quantise_program
from spikestack.pipeline import export_netx, import_netx, load_program, verify_netx
from spikestack.simulators import simulate

PEERS = Path(__file__).resolve().parents[2] / "peers"
sys.path.insert(0, str(PEERS))
import environments  # noqa: E402  (tests/peers: the side environments)

STEPS, SAMPLES = 100, 2


@pytest.fixture(scope="module")
def lava_dl() -> Path:
    return environments.ensure("lavadl")


def _identical(result: dict) -> None:
    assert result["status"] == "identical", result
    assert result["steps"] == STEPS and all(n > 0 for n in result["layer_spikes"].values()), result


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_lava_dl_runs_our_export_as_loihi_mode(tmp_path, lava_dl, name):
    export = export_netx(GRAPHS[name](), tmp_path / "model.net")
    x = input_spikes(export.quantised.program.ops[0].out_shape, STEPS, SAMPLES)
    _identical(verify_netx(export, x, python=lava_dl))


def test_the_demo_model_trained_for_netx(tmp_path, lava_dl):
    """The demo's network (noise-T1 on digits, 64-256-10 IF) trained with --for netx, on rate-coded digits."""
    from spikestack.frontend.data import load_digits
    from spikestack.frontend.methods import train_demo_model
    from spikestack.pipeline import deploy_input

    data = load_digits(seed=0)
    path = train_demo_model(data, seed=0, epochs=3, target="netx").export(tmp_path / "model.nir")
    export = export_netx(path, tmp_path / "model.net")
    x = deploy_input(export.quantised.program, None, "digits", STEPS, SAMPLES, 0).batch(0, SAMPLES)
    _identical(verify_netx(export, x, python=lava_dl))


def test_slayer_files_import_and_run_as_lava_dl_runs_them(tmp_path, lava_dl):
    done = subprocess.run([str(lava_dl), str(PEERS / "side_lavadl.py"), "slayer", str(tmp_path)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for kind in ("dense", "conv"):
        with np.load(tmp_path / f"{kind}.slayer.npz") as saved:
            x = saved["input"][:STEPS, :SAMPLES].astype(np.float32)
        theirs, _ = run_lava_dl(tmp_path / f"{kind}.net", x, lava_dl)
        import_netx(tmp_path / f"{kind}.net", tmp_path / f"{kind}.nir", x.shape[2:] if kind == "conv" else None)
        quantised = quantise_program(load_program(tmp_path / f"{kind}.nir"))[0]
        neurons = [op.name for op in quantised.program.neuron_ops]
        run = simulate(quantised, x, mode="loihi", record=neurons)
        assert len(theirs) == len(neurons)
        for name, lava in zip(neurons, theirs):
            assert lava.sum() > 0, f"{kind}: layer {name} is silent in lava-dl"
            np.testing.assert_array_equal(run.recordings[name]["s"].astype(np.int8), lava, err_msg=f"{kind}: {name}")


def test_cli_export_verify_and_deploy_export(tmp_path, lava_dl):
    from spikestack.ir.io import write_nir

    write_nir(GRAPHS["dense_mlp"](), tmp_path / "g.nir")
    x = input_spikes((34,), 40, 2)
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, SPIKESTACK_LAVA_DL=str(lava_dl))
    cli = [sys.executable, "-m", "spikestack"]
    done = subprocess.run([*cli, "export", tmp_path / "g.nir", "--to", "netx", "--out", tmp_path / "m.net",
                           "--verify", tmp_path / "x.npy"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "lava-dl: identical to loihi mode" in done.stdout
    done = subprocess.run([*cli, "deploy", tmp_path / "g.nir", "--input", tmp_path / "x.npy", "--backend", "sim",
                           "--chip", "loihi", "--export", "netx", "--out", tmp_path / "report", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report" / "model.net").is_file()
    assert "lava-dl: identical to loihi mode" in (tmp_path / "report" / "report.md").read_text()
