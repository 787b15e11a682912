"""Sinabs 3.1.3 judges `--preset sinabs` (issue 16): its own exporter's files, run by us with the preset
alone, spike exactly as Sinabs' own runtime ran the model (side_sinabs.py builds the references).

What each kind pins down (tests/peers/side_sinabs.py and /tmp/interop/sinabs.md have the details):
- iaf_mlp: IAF with MultiSpike (floor(v / theta) spikes in one step, so v >= theta fires) and the
  subtractive reset of every spike in the same step; integer weights land v exactly on theta.
- lif_mlp: LIF with Sinabs' norm_input default: v <- a v + (1 - a) x, a = exp(-1/tau) (tau in steps),
  0-d parameters in one layer and per-neuron ones in the other.
- lif_readout: ExpLeak (NIR LI) readout: v <- a v + x (ExpLeak's norm_input default is False).
- lif_bt: Sinabs' plain LIF and IAF layers (B, T, ...), exported with a (B, T, ...) sample: the Input
  and Output types start with the sample's T (here 100), which the preset must drop.
- conv: Conv2d, IAF, SumPool2d, Flatten, Linear (the exporter leaves Conv2d input_shape and Flatten
  input_type unset; nir's infer_types() fills them, as a user must before nir.write).
- iaf_mlp_single: the exporter drops the spike function: a SingleSpike model's file is the same kind
  of file, so the preset alone (MultiSpike) cannot run it as Sinabs does; spikes_per_step="one" can.
"""

from __future__ import annotations

import numpy as np
import pytest

from peer_oracle import cli_run, compare, load_reference, ours
from peer_oracle import peer_reference  # noqa: F401  (fixture)

PRESET_KINDS = ["iaf_mlp", "lif_mlp", "lif_readout", "lif_bt", "conv"]


def _record(expected: dict) -> list[str]:
    return [key.split(":", 1)[1] for key in expected]


@pytest.mark.parametrize("kind", PRESET_KINDS)
def test_sinabs_preset_alone_matches_sinabs(peer_reference, kind):
    nir_file, x, expected = load_reference(peer_reference("sinabs"), kind)
    run = ours(nir_file, x, _record(expected), preset="sinabs")
    compare(run, expected)


@pytest.mark.parametrize("kind", ["iaf_mlp", "lif_mlp", "lif_bt", "conv"])
def test_sinabs_references_exercise_multispike(peer_reference, kind):
    """The references must hold steps where one neuron emits several spikes (MultiSpike)."""
    _, _, expected = load_reference(peer_reference("sinabs"), kind)
    assert max(float(a.max()) for k, a in expected.items() if k.startswith("spikes:")) >= 2


def test_sinabs_single_spike_is_lost_in_the_file(peer_reference):
    """Sinabs writes no spike function: a SingleSpike model needs spikes_per_step='one' said explicitly."""
    nir_file, x, expected = load_reference(peer_reference("sinabs"), "iaf_mlp_single")
    record = _record(expected)
    with pytest.raises(AssertionError):  # the preset assumes MultiSpike, Sinabs' default
        compare(ours(nir_file, x, record, preset="sinabs"), expected)
    compare(ours(nir_file, x, record, preset="sinabs", spikes_per_step="one"), expected)


def test_sinabs_file_through_the_cli(peer_reference, tmp_path):
    saved, expected = cli_run(peer_reference("sinabs"), "conv", "sinabs", tmp_path)
    last = _record(expected)[-1]  # the Output node carries the last IAF's spikes
    np.testing.assert_array_equal(saved["output"].reshape(expected[f"spikes:{last}"].shape), expected[f"spikes:{last}"])