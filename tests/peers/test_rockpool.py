"""Rockpool 3.1.0 judges `--preset rockpool` (issue 16): its own exporter writes each file, its own
runtime computes the spikes, and our simulator must reproduce them from the file and the preset alone.

The conventions (read from Rockpool's source; tests/peers/side_rockpool.py builds the models):
- LIFTorch -> CubaLIF: i <- beta (i + x), v <- alpha v + i + bias (alpha, beta = exp(-dt / tau)).
- LIFNeuronTorch -> LIF: v <- alpha v + x + bias.   ExpSynTorch -> LI: v <- beta (v + x)
  (a scalar ExpSynTorch tau is written as 0-d tau, r and v_leak: the li_scalar kind).
- floor(v / theta) spikes where v >= theta, each removing theta, in the same step.
- The exporter writes r = tau exp(-dt / tau) / dt (dt = 1e-3), Input types [1, N], and drops LIFTorch
  and LIFNeuronTorch biases and LIFTorch recurrent weights (v_leak = 0, no recurrent edge).
"""

from __future__ import annotations

import numpy as np
import pytest

from peer_oracle import cli_run, compare, load_reference, ours
from peer_oracle import peer_reference  # noqa: F401  (fixture)

PEER = "rockpool"
KINDS = ("cuba_mlp", "lif_mlp", "li_readout", "li_scalar", "cuba_bias_rec")


def _nodes(expected: dict) -> list[str]:
    return [key.split(":", 1)[1] for key in expected]


@pytest.mark.parametrize("kind", KINDS)
def test_preset_runs_rockpool_files_as_rockpool_does(peer_reference, kind):
    """Every spiking layer's spike counts at every step and sample; LI readouts within 1e-5."""
    nir_file, x, expected = load_reference(peer_reference(PEER), kind)
    run = ours(nir_file, x, _nodes(expected), preset=PEER)
    compare(run, expected)


def test_reference_has_multi_spike_steps(peer_reference):
    """The reference set exercises what the preset must get right: several spikes in one step."""
    directory = peer_reference(PEER)
    most = max(float(np.max(v)) for kind in KINDS for k, v in load_reference(directory, kind)[2].items()
               if k.startswith("spikes:"))
    assert most >= 2


def test_cli_run_with_the_preset(peer_reference, tmp_path):
    """`spikestack run FILE --preset rockpool` exits 0 and saves Rockpool's spikes (output and hidden)."""
    saved, expected = cli_run(peer_reference(PEER), "cuba_mlp", PEER, tmp_path)
    last = expected["spikes:3_LIFTorch"]
    np.testing.assert_array_equal(saved["output"].reshape(last.shape), last, err_msg="output")


def test_what_the_exporter_dropped_is_reported(peer_reference, tmp_path, capsys):
    """Rockpool's exporter drops LIFTorch biases and recurrent weights without a trace in the file.
    The file runs as the network without them (test above); the network the user trained spikes
    differently (so the loss is real), and loading the file with the preset says so in one line."""
    from spikestack.cli import main

    directory = peer_reference(PEER)
    nir_file, x, expected = load_reference(directory, "cuba_bias_rec")
    trained = {k.replace("lost_spikes__", "spikes:"): v for k, v in np.load(directory / "cuba_bias_rec.npz").items()
               if k.startswith("lost_spikes__")}
    assert any(not np.array_equal(trained[k], expected[k]) for k in expected)
    np.save(tmp_path / "x.npy", x)
    capsys.readouterr()
    code = main(["run", str(nir_file), "--preset", PEER, "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "o.npz")])
    err = capsys.readouterr().err
    assert code == 0, err
    said = [line for line in err.splitlines() if "recurrent" in line.lower()]
    assert len(said) == 1, f"expected one line saying the file cannot carry recurrent weights/biases; stderr:\n{err}"
