"""Training for a deployment target: the neuron options and layers a method must use so that what it
exports runs there as trained (`--for` on `spikestack train`).

"netx" (Loihi 2 through lava-dl netx, docs/netx.md): netx's neurons are Lava's CUBA LIF, which reset
v to zero in the step they fire and start at v = 0, and netx has no pooling layer. A method trained
for netx builds its neuron layers with reset "zero" and initial potential 0, replaces each 2x2 sum
pool by a stride-2 convolution, and exports `fixed_point="netx"` in the graph's metadata, so that
loihi mode runs the integers `spikestack export --to netx` writes.
"""

from __future__ import annotations

from spikestack.errors import OptionsError

TARGETS = {"netx": dict(reset="zero", initial_potential=0.0, fixed_point="netx")}


def neuron_options(target: str | None, method: str, refused: str | None = None) -> dict:
    """The neuron keywords for `target` (empty for None); `refused`: why `method` cannot be trained
    for any target (its dynamics need what a target lacks)."""
    if target is None:
        return {}
    if target not in TARGETS:
        raise OptionsError(f"unknown training target {target!r}; choose one of {', '.join(TARGETS)}")
    if refused:
        raise OptionsError(f"{method} cannot be trained for {target}: {refused}")
    return dict(TARGETS[target])
