"""The peers tier (issue 16): each peer library's own exporter and runtime judge our presets.

A helper module, not a conftest.py: a second `conftest` module would shadow tests/conftest.py for
the tests that `from conftest import ...` (as tests/backends/lava/lava_nets.py explains). Test files
import the `peer_reference` fixture from here; the references it makes are shared by all of them.

A peer-side script `side_<peer>.py` runs in that peer's environment (`environments.py`) and never
imports spikestack. Its contract:

    side_<peer>.py reference OUTDIR
        For each model kind K it builds with the peer's public API (seeded weights scaled so neurons
        fire): OUTDIR/K.nir written by the peer's own exporter, and OUTDIR/K.npz holding `input`
        (T, B, *input shape, float32 0/1 spikes from a seed) and what the peer's own runtime computed
        on it: `spikes:<node>` (T, B, *shape) for every spiking layer, `readout:<node>` for a
        non-spiking one, named as our flattened graph names the file's nodes (nested: "sub.node").
    side_<peer>.py run FILE.nir INPUT.npy OUT.npz
        The round trip: the peer's own importer loads FILE, its runtime runs INPUT (T, B, *shape);
        OUT.npz holds `output` (T, B, *shape) and `spikes:<node>` where the peer exposes them.

Here, one session-wide reference run per peer (cached), and `ours`, our side with the preset alone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import environments  # tests/peers is on sys.path (pytest prepends the test directory; no packages)

HERE = Path(__file__).resolve().parent
ENVIRONMENT_OF = {"snntorch": "peers", "norse": "peers", "rockpool": "peers", "sinabs": "sinabs",
                  "neurobench": "neurobench"}
SIDE_TIMEOUT = 600


def side(peer: str, *args: str) -> str:
    """Run `side_<peer>.py args...` in the peer's environment; stdout, or a failure with stderr's tail."""
    python = environments.ensure(ENVIRONMENT_OF[peer])
    done = subprocess.run([str(python), str(HERE / f"side_{peer}.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=SIDE_TIMEOUT, cwd=HERE)
    if done.returncode != 0:
        pytest.fail(f"side_{peer}.py {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


class References:
    """Lazily made, once per session and peer: the directory of the peer's reference files."""

    def __init__(self, root: Path):
        self.root, self.made = root, {}

    def __call__(self, peer: str) -> Path:
        if peer not in self.made:
            out = self.root / peer
            out.mkdir()
            side(peer, "reference", out)
            self.made[peer] = out
        return self.made[peer]


_SHARED: list[References] = []  # one per session, whichever test module imports the fixture first


@pytest.fixture(scope="session")
def peer_reference(tmp_path_factory) -> References:
    if not _SHARED:
        _SHARED.append(References(tmp_path_factory.mktemp("peers")))
    return _SHARED[0]


def load_reference(directory: Path, kind: str) -> tuple[Path, np.ndarray, dict[str, np.ndarray]]:
    """(the peer's .nir, its input, {"spikes:<node>" | "readout:<node>": array}) of one model kind."""
    data = np.load(directory / f"{kind}.npz")
    return directory / f"{kind}.nir", data["input"], {k: data[k] for k in data.files if ":" in k}


def ours(nir_file, x: np.ndarray, record, preset: str | None = None, **options):
    """Our simulator's Run of a peer's file, lowered with `preset` alone (plus explicit options, if any)."""
    from spikestack.ir import lower_graph, resolve_options
    from spikestack.ir.validate import load_graph
    from spikestack.simulators import simulate

    graph = load_graph(nir_file, preset=preset)
    program = lower_graph(graph, resolve_options(graph.metadata, preset=preset, **options))
    return simulate(program, x, record=list(record), count=False)


def compare(run, expected: dict[str, np.ndarray], rtol: float = 1e-5) -> None:
    """Spikes equal at every step and sample; readouts within rtol (relative to the readout's scale)."""
    for key, want in expected.items():
        what, node = key.split(":", 1)
        rec = run.recordings[node]
        got = rec["s"] if what == "spikes" else rec.get("v", rec.get("out"))
        got = np.asarray(got).reshape(want.shape)
        if what == "spikes":
            bad = np.argwhere(got != want)
            assert bad.size == 0, (f"{node}: {len(bad)} of {want.size} spike values differ; first at (t, b, ...) "
                                   f"{tuple(bad[0])}: ours {got[tuple(bad[0])]}, peer {want[tuple(bad[0])]}")
        else:
            scale = max(float(np.abs(want).max()), 1e-12)
            err = float(np.abs(got - want).max()) / scale
            assert err <= rtol, f"{node}: readout differs by {err:.3g} of its scale (> {rtol})"


def cli_run(directory: Path, kind: str, preset: str, tmp_path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """`spikestack run K.nir --preset P --record <every layer>` as a user types it: exit 0, and every
    saved spike array equal to the peer's. Returns (the saved arrays, the peer's references)."""
    from spikestack.cli import main

    nir_file, x, expected = load_reference(directory, kind)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "o.npz"
    nodes = [key.split(":", 1)[1] for key in expected]
    code = main(["run", str(nir_file), "--preset", preset, "--input", str(tmp_path / "x.npy"), "--out", str(out),
                 "--record", *nodes])
    assert code == 0
    saved = dict(np.load(out))
    for key, want in expected.items():
        if key.startswith("spikes:"):
            got = saved[f"{key.split(':', 1)[1]}.s"].reshape(want.shape)
            assert np.array_equal(got, want), f"{key}: {int((got != want).sum())} spike values differ"
    return saved, expected
