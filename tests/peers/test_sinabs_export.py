"""`spikestack export --for sinabs` (issue 16, deliverable 5): Sinabs 3.1.3's own importer (`sinabs.from_nir`)
and runtime run the file we write exactly as our simulator runs our model file.

Round trip: networks built with our frontend (`spikestack.frontend`), with the neuron options Sinabs'
importer can express (spikes_per_step='many', reset='subtract' in the same step, v0 = 0, dt = 1; its
MultiSpike fires at v >= threshold), exported with `export_nir`, rewritten by `main(["export", ..., "--for",
"sinabs"])`, then run by side_sinabs.py `run` (nir 1.0.4's reader, `sinabs.from_nir`, one forward call) on
seeded spike input, T = 120 steps, B = 4. Every step, sample and neuron of every layer must match our
simulator's run of OUR model file (no preset: its metadata carries the options).
- mlp: trained by `frontend.train.fit` on digits: Linear -> LIF (per-neuron tau, exact) -> Linear -> IF.
  The LIF's input gain (1 - alpha) is folded into its Affine; the IF is written as a LIF with tau = inf
  (the importer's IF branch clips v at -threshold, which this IF passes below: checked).
- conv: Conv2d -> LIF (euler, per-channel tau) -> SumPool2d -> Flatten -> Linear -> IF, seeded weights
  (per-channel parameters written (C, 1, 1); gain dt / tau folded into the Conv2d).
- readout: a hand-written graph (the frontend has no LI layer) with explicit options: LIF with r and
  v_leak (folded into weights and bias) -> LI readout (ExpLeak), within 1e-5 of its scale.
Sinabs' own files (side_sinabs.py's reference models, exported by `sinabs.to_nir`) read with `--preset
sinabs` and written `--for sinabs` run in Sinabs exactly as Sinabs' runtime ran the original models.
Refusals: what our models can have and Sinabs' importer cannot run: exit 2, one stderr line naming the
node, no file.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from torch import nn

from peer_oracle import compare, load_reference, ours, side
from peer_oracle import peer_reference  # noqa: F401  (fixture)

T, B, P = 120, 4, 0.3  # steps, samples, spike probability per unit of pixel intensity
OPTIONS = dict(threshold=">=", spikes_per_step="many", reset="subtract", reset_timing="immediate",
               initial_potential=0.0, dt=1.0)


def _spikes(images: np.ndarray, steps: int, rng) -> np.ndarray:
    """Rate code: pixel intensity p fires with probability P p per step; (steps, B, *shape) float32."""
    return (rng.random((steps, *images.shape)) < P * images[None]).astype(np.float32)


def _export(model, path, shape) -> str:
    from spikestack.frontend.export import export_nir, model_options

    export_nir(model, path, "test", shape)
    return str(path)


def _trained_mlp(directory) -> tuple[str, np.ndarray, list[str]]:
    from spikestack.frontend.data import load_digits
    from spikestack.frontend.neurons import IFNeurons, LIFNeurons, SpikingSequential, predict
    from spikestack.frontend.train import fit, seed_everything, torch_threads

    seed_everything(16)
    data = load_digits()
    model = SpikingSequential(
        nn.Linear(64, 32),
        LIFNeurons(32, tau=np.linspace(4.0, 16.0, 32), v_threshold=0.4, integration="exact", **OPTIONS),
        nn.Linear(32, 10), IFNeurons(10, v_threshold=1.0, integration="exact", **OPTIONS))
    # spikes_per_step='many' trains through the surrogate of each step's first spike (ir.dynamics.fire)
    with torch.no_grad():
        model[0].weight.normal_(0.05, 0.3)

    def encode(x: torch.Tensor) -> torch.Tensor:
        return (torch.rand(8, *x.shape) < P * x).to(x.dtype)

    with torch_threads(1):  # small batches: one thread is several times faster (train.py: torch_threads)
        history = fit(model, data, lambda m, x: m.run(encode(x)).current, lambda m, x: predict(m.run(encode(x))),
                      epochs=6, batch_size=128, lr=1e-2, seed=16, progress=False)
    assert history.test_accuracy > 0.3  # trained: chance is 0.1
    x = _spikes(data.x_test[:B], T, np.random.default_rng(16))
    return _export(model, directory / "mlp.nir", (64,)), x, ["lif1", "if3"]


def _conv(directory) -> tuple[str, np.ndarray, list[str]]:
    from spikestack.frontend.data import load_digits
    from spikestack.frontend.neurons import IFNeurons, LIFNeurons, SpikingSequential

    torch.manual_seed(17)
    tau = np.linspace(3.0, 9.0, 4)[:, None, None]  # per channel
    model = SpikingSequential(
        nn.Conv2d(1, 4, 3, padding=1), LIFNeurons((4, 8, 8), tau=tau, v_threshold=0.5, integration="euler", **OPTIONS),
        nn.LPPool2d(1, 2), nn.Flatten(),
        nn.Linear(64, 10), IFNeurons(10, v_threshold=2.0, integration="euler", **OPTIONS))
    with torch.no_grad():
        model[0].weight.normal_(0.4, 0.6)
        model[4].weight.normal_(0.0, 0.5)
    x = _spikes(load_digits(flatten=False).x_test[:B], T, np.random.default_rng(17))
    return _export(model, directory / "conv.nir", (1, 8, 8)), x, ["lif1", "if5"]


def _readout(directory) -> tuple[str, np.ndarray, list[str]]:
    """Affine -> LIF (r 2, v_leak 0.2) -> Affine -> LI (r 0.5, v_leak 0.1): a hand-written NIR graph (our
    frontend has no LI layer), lowered with explicit options (READOUT_OPTIONS); the LI is a readout."""
    rng = np.random.default_rng(18)

    def f32(a) -> np.ndarray:
        return np.asarray(a, np.float32)

    nodes = {
        "input": nir.Input({"input": np.array([16])}),
        "fc1": nir.Affine(f32(rng.normal(0.1, 0.5, (24, 16))), f32(rng.normal(0.0, 0.05, 24))),
        "lif": nir.LIF(tau=f32(rng.uniform(4, 12, 24)), r=f32(np.full(24, 2.0)), v_leak=f32(np.full(24, 0.2)),
                       v_threshold=f32(np.full(24, 1.0))),
        "fc2": nir.Affine(f32(rng.normal(0.0, 1.0, (8, 24))), f32(np.zeros(8))),
        "li": nir.LI(tau=f32(np.full(8, 10.0)), r=f32(np.full(8, 0.5)), v_leak=f32(np.full(8, 0.1))),
        "output": nir.Output({"output": np.array([8])}),
    }
    order = list(nodes)
    path = directory / "readout.nir"
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), type_check=False))
    x = (rng.random((T, B, 16)) < 0.2).astype(np.float32)
    return str(path), x, ["lif", "li"]


READOUT_OPTIONS = dict(dt=1.0, reset="subtract", integration="euler", threshold=">=", spikes_per_step="many")


SINABS_KINDS = ["iaf_mlp", "lif_mlp", "lif_readout", "lif_bt", "conv"]  # side_sinabs.py's reference models


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory, peer_reference) -> dict:
    """{case: (our Run of our model file, Sinabs' outputs of the file written for it, recorded nodes, that
    file)} for our models, and {kind: (Sinabs' own runtime's outputs, Sinabs' outputs of the file we wrote
    from its exporter's file)} for Sinabs' reference models: all run by one start of Sinabs."""
    from spikestack.cli import main

    directory = tmp_path_factory.mktemp("sinabs_export")
    cases = {"mlp": _trained_mlp(directory), "conv": _conv(directory), "readout": _readout(directory)}
    flags = {name: [] for name in cases}
    flags["readout"] = [f"--{k.replace('_', '-')}={v}" for k, v in READOUT_OPTIONS.items()]
    references = {f"sinabs_{kind}": load_reference(peer_reference("sinabs"), kind) for kind in SINABS_KINDS}
    for kind, (nir_file, x, _) in references.items():  # Sinabs' exporter's file, read with --preset sinabs
        cases[kind], flags[kind] = (str(nir_file), x, []), ["--preset", "sinabs"]
    args = []
    for name, (model_file, x, _) in cases.items():
        out = str(directory / f"{name}.sinabs.nir")
        assert main(["export", model_file, "--for", "sinabs", "--out", out, *flags[name]]) == 0
        np.save(directory / f"{name}.x.npy", x)
        args += [out, directory / f"{name}.x.npy", directory / f"{name}.out.npz"]
    side("sinabs", "run", *args)  # one start of Sinabs for every file
    theirs = {name: dict(np.load(directory / f"{name}.out.npz")) for name in cases}
    ours_cases = {name: (ours(model_file, x, record, **(READOUT_OPTIONS if name == "readout" else {})), theirs[name],
                         record, directory / f"{name}.sinabs.nir")
                  for name, (model_file, x, record) in cases.items() if name not in references}
    return ours_cases | {kind: (expected, theirs[kind]) for kind, (_, _, expected) in references.items()}


@pytest.mark.parametrize("case", ["mlp", "conv", "readout"])
def test_sinabs_runs_our_export_as_we_do(round_trip, case):
    run, theirs, record, _ = round_trip[case]
    expected = {key: value for key, value in theirs.items() if ":" in key}
    assert sorted(key.split(":", 1)[1] for key in expected) == sorted(record)  # Sinabs exposes every layer
    for key in expected:
        if key.startswith("spikes:"):
            s = np.asarray(run.recordings[key.split(":", 1)[1]]["s"])
            assert s.shape[:2] == (T, B)
            assert 0.02 <= float((s > 0).mean()) <= 0.20, f"{case} {key}: fires in {(s > 0).mean():.3f} of neuron-steps"
    compare(run, expected)  # spikes equal at every step, sample and neuron; readouts within 1e-5 of their scale
    if case != "readout":
        np.testing.assert_array_equal(np.asarray(run.outputs["output"]).reshape(theirs["output"].shape),
                                      theirs["output"])


@pytest.mark.parametrize("kind", SINABS_KINDS)
def test_sinabs_files_through_us_run_in_sinabs_as_sinabs_ran_them(round_trip, kind):
    """Sinabs' exporter's file -> `export --preset sinabs --for sinabs` -> Sinabs' importer spikes exactly as
    Sinabs' runtime ran the original model (its own from_nir of its own to_nir does not: it clips IF at
    -threshold and drops LIF's input gain 1 - alpha)."""
    expected, theirs = round_trip[f"sinabs_{kind}"]
    for key, want in expected.items():
        got = theirs[key].reshape(want.shape)
        if key.startswith("spikes:"):
            assert np.array_equal(got, want), f"{kind} {key}: {int((got != want).sum())} of {want.size} values differ"
        else:
            assert float(np.abs(got - want).max()) <= 1e-5 * float(np.abs(want).max()), f"{kind} {key}"


def test_mlp_exercises_what_the_writer_must_get_right(round_trip):
    """Several spikes in one step (MultiSpike), and the IF layer's v well below -threshold, where the
    importer's own IF branch (min_v_mem = -v_threshold) would have clipped it."""
    run, theirs, _, written = round_trip["mlp"]
    assert max(float(theirs[f"spikes:{n}"].max()) for n in ("lif1", "if3")) >= 2
    assert float(np.min(run.recordings["if3"]["v"])) < -2.0  # v_threshold 1
    graph = nir.read(str(written))
    assert isinstance(graph.nodes["if3"], nir.LIF) and np.all(np.isinf(graph.nodes["if3"].tau))


# --- refusals -----------------------------------------------------------------------------------------

def _mlp_file(directory, neurons="lif", **options) -> str:
    from spikestack.frontend.neurons import CubaLIFNeurons, LIFNeurons, SpikingSequential

    merged = {**OPTIONS, **options}
    layer = (CubaLIFNeurons(10, tau_syn=3.0, tau_mem=8.0, integration="exact", **merged) if neurons == "cuba"
             else LIFNeurons(10, tau=8.0, integration="exact", **merged))
    return _export(SpikingSequential(nn.Linear(16, 10), layer), directory / "model.nir", (16,))


def _conv_file(directory, tail: str) -> str:
    from spikestack.frontend.neurons import LIFNeurons, SpikingSequential

    if tail == "avgpool":
        layers = [nn.Conv2d(1, 2, 3, padding=1), LIFNeurons((2, 4, 4), tau=4.0, integration="exact", **OPTIONS),
                  nn.AvgPool2d(2), nn.Flatten(),
                  nn.Linear(8, 3), LIFNeurons(3, tau=4.0, integration="exact", **OPTIONS)]
    elif tail == "pool_into_lif":  # a LIF fed by a pooling: no weights to fold its gain (1 - alpha) into
        layers = [nn.Conv2d(1, 2, 3, padding=1), LIFNeurons((2, 4, 4), tau=4.0, integration="exact", **OPTIONS),
                  nn.LPPool2d(1, 2), LIFNeurons((2, 2, 2), tau=4.0, integration="exact", **OPTIONS)]
    else:  # per-pixel time constants
        tau = np.linspace(2.0, 9.0, 32).reshape(2, 4, 4)
        layers = [nn.Conv2d(1, 2, 3, padding=1), LIFNeurons((2, 4, 4), tau=tau, integration="exact", **OPTIONS)]
    return _export(SpikingSequential(*layers), directory / "model.nir", (1, 4, 4))


def _recurrent_file(directory) -> str:
    """Input -> Affine -> LIF -> Output with a recurrent Affine LIF -> rec -> LIF (not from our frontend,
    whose exporter writes chains: a hand-written NIR graph)."""
    rng = np.random.default_rng(0)
    lif = nir.LIF(tau=np.full(4, 8.0, np.float32), r=np.ones(4, np.float32), v_leak=np.zeros(4, np.float32),
                  v_threshold=np.ones(4, np.float32))
    nodes = {"input": nir.Input({"input": np.array([3])}),
             "fc": nir.Affine(rng.normal(size=(4, 3)).astype(np.float32), np.zeros(4, np.float32)),
             "lif": lif, "rec": nir.Affine(rng.normal(size=(4, 4)).astype(np.float32), np.zeros(4, np.float32)),
             "output": nir.Output({"output": np.array([4])})}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")]
    path = directory / "model.nir"
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return str(path)


REFUSALS = {  # name: (model file maker, extra CLI options, the node, words the line must contain)
    "zero reset": (lambda d: _mlp_file(d, reset="zero"), [], "lif1", "resets to v_reset"),
    "one spike per step": (lambda d: _mlp_file(d), ["--spikes-per-step", "one"], "lif1", "emits at most one"),
    "delayed reset": (lambda d: _mlp_file(d, reset_timing="delayed"), [], "lif1", "resets delayed (in the next step)"),
    "initial potential": (lambda d: _mlp_file(d, initial_potential=0.5), [], "lif1", "starts at 0.5"),
    "CubaLIF": (lambda d: _mlp_file(d, neurons="cuba"), [], "cubalif1", "no CubaLIF"),
    "AvgPool2d": (lambda d: _conv_file(d, "avgpool"), [], "avgpool2d2", "AvgPool2d"),
    "gain without weights": (lambda d: _conv_file(d, "pool_into_lif"), [], "lif3", "fed by SumPool2d 'sumpool2d2'"),
    "per-pixel parameters": (lambda d: _conv_file(d, "per_pixel"), [], "lif1", "vary along dimension 1"),
    "recurrence": (_recurrent_file, ["--preset", "sinabs"], "lif", "recurrent edge from 'rec'"),
}


@pytest.mark.parametrize("what", list(REFUSALS))
def test_what_sinabs_cannot_run_is_refused_in_one_line(tmp_path, capsys, what):
    from spikestack.cli import main

    make, extra, node, words = REFUSALS[what]
    model_file = make(tmp_path)
    out = tmp_path / "for_sinabs.nir"
    capsys.readouterr()
    assert main(["export", model_file, "--for", "sinabs", "--out", str(out), *extra]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"node '{node}'" in lines[0] and words in lines[0], lines[0]
    assert not out.exists()
