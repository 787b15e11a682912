"""Our estimates against published measurements (docs/energy.md, "Published measurements"): each case
of bench/published_measurements.py is rebuilt, simulated and priced, and the ratio ours / paper must
stay in the band docs/energy.md records for it.

The paper's figures are constants with their sources (below and in the bench's CASES); the bands are
the documented result of our model on these rebuilds, not something the test derives from itself: a
change to the model that moves a ratio out of its band must come with an updated table in
docs/energy.md (rerun `bench/published_measurements.py --table ...`) and updated bands here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import published_measurements as pm  # noqa: E402

# The paper's figures, restated from their sources so a change to the bench cannot move them silently.
PAPER = {
    # Blouw et al. 2019, Table 1 (github.com/abr/power_benchmarks, paper/power_summary.tex): Loihi
    # "Dynamic (W) 0.081", "Inf/Sec 296", "Joules/Inf 0.00027"
    ("KWS 390-256-256 (Blouw 2019)", "energy"): 0.081 / 296,
    ("KWS 390-256-256 (Blouw 2019)", "time"): 1 / 296,
    # lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb, outputs at commit b9e3691:
    # "Throughput : 408.91 fps.", "Dynamic Energy per inference : 1.093544 mJ"
    ("PilotNet LIF (lava-dl tutorial)", "energy"): 1.093544e-3,
    ("PilotNet LIF (lava-dl tutorial)", "time"): 1 / 408.91,
    # Bos & Muir 2024, arXiv:2406.15112, abstract: "6.6 uJ / Inf" at "291 uW"
    ("Aloha KWS SynNet (Bos & Muir 2024)", "energy"): 6.6e-6,
}

# Documented ratios ours / paper (docs/energy.md table, default rates, seed 0), with a band of x/÷ 1.5
# around each for seed and rounding noise; the model change of issue 21 moves these: update both.
DOCUMENTED = {
    ("KWS 390-256-256 (Blouw 2019)", "energy"): 0.0127,
    ("KWS 390-256-256 (Blouw 2019)", "time"): 0.101,
    ("PilotNet LIF (lava-dl tutorial)", "energy"): 0.518,
    ("PilotNet LIF (lava-dl tutorial)", "time"): 0.439,
    ("Aloha KWS SynNet (Bos & Muir 2024)", "energy"): 1.01,
}
BAND = 1.5


def test_every_case_has_a_documented_figure_and_ratio():
    keys = {(c.name, c.quantity) for c in pm.CASES}
    assert keys == set(PAPER) == set(DOCUMENTED)
    for case in pm.CASES:
        assert case.paper == pytest.approx(PAPER[case.name, case.quantity], rel=1e-9), case.name
        assert case.source and case.unspecified


@pytest.mark.parametrize("case", pm.CASES, ids=lambda c: f"{c.chip}-{c.quantity}-{c.name.split()[0]}")
def test_ratio_in_documented_band(case):
    result = pm.run_case(case)
    documented = DOCUMENTED[case.name, case.quantity]
    assert result["ours"] is not None, case.name
    assert documented / BAND <= result["ratio"] <= documented * BAND, (
        f"{case.name} {case.quantity}: ours/paper = {result['ratio']:.3g}, documented {documented:.3g}")
    # the rebuild ran at the activity it states: each layer within 25% of its assumed rate
    for node, target in result["targets"].items():
        assert result["reached"][node] == pytest.approx(target, rel=0.25), node
