"""Norse 1.1.0 judges `--preset norse` (issue 16): its own exporter's files, its own runtime's spikes.

`side_norse.py reference` (run once per session in `.venv-peers`) builds each model kind with Norse's
public API, exports it with `norse.torch.to_nir` + `nir.write`, and runs it with Norse's cells.
Our side loads the file with the preset alone and must give the same spikes at every step and
sample (the LI readout within 1e-5). What each kind pins (see side_norse.py):

- mlp:      LIFBoxCell -> NIR LIF whose tau field is dt * tau (Norse 1.1.0's exporter), Input type [1, 16]
- conv:     Conv2d (input_shape filled in by hand, as nir.write requires) + IAFCell (v <- v + x, no dt) + LIFBoxCell
- li:       LIBoxCell readout (NIR LI), its v compared
- cubalif:  LIFCell -> NIR CubaLIF: i <- i + x before the voltage uses it, then i decays (no dt/tau_syn gain)
- leak:     nonzero v_leak: a bias through the leak, and Norse's cells start at v = v_leak, not 0
- if_exact: weights in quarters, thresholds 1.0: v lands exactly on the threshold and must not fire (v > v_th)
- li_scalar: LIBoxCell() with Norse's default scalar parameters: 0-d tau/r/v_leak in the file, broadcast
"""

from __future__ import annotations

import numpy as np
import pytest

from peer_oracle import cli_run, compare, load_reference, ours
from peer_oracle import peer_reference  # noqa: F401  (fixture)

KINDS = ("mlp", "conv", "li", "cubalif", "leak", "if_exact", "li_scalar")


@pytest.mark.parametrize("kind", KINDS)
def test_norse_file_runs_as_norse_runs_it(peer_reference, kind):
    nir_file, x, expected = load_reference(peer_reference("norse"), kind)
    run = ours(nir_file, x, [key.split(":", 1)[1] for key in expected], preset="norse")
    compare(run, expected)


def test_norse_file_through_the_cli(peer_reference, tmp_path):
    saved, expected = cli_run(peer_reference("norse"), "mlp", "norse", tmp_path)
    outputs = [k for k in saved if "." not in k]  # the graph's Output: the last layer's spikes
    assert outputs, f"no output array in {list(saved)}"
    np.testing.assert_array_equal(saved[outputs[0]].reshape(expected["spikes:3"].shape), expected["spikes:3"])