"""`spikestack export --for snntorch` (issue 16, deliverable 5), judged by snnTorch 1.0.0's own importer
(`import_from_nir`) and runtime: networks trained by our frontend, exported through the CLI, must spike
in snnTorch exactly as our simulator runs our own file; what its importer cannot express is refused in
one line naming the node (spikestack/ir/targets/snntorch.py has the rules and their sources).
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from torch import nn

from peer_oracle import ours, side
from spikestack.cli import main
from spikestack.frontend.data import load_digits
from spikestack.frontend.export import export_nir, model_options
from spikestack.frontend.neurons import (CubaLIFNeurons, IFNeurons, LIFNeurons, SpikingSequential, constant_input,
                                         predict)
from spikestack.frontend.train import fit, seed_everything, torch_threads
from spikestack.ir.options import options_metadata, resolve_options

T, B, STEPS = 120, 4, 8  # round-trip steps and samples; training steps


def _snntorch_terms() -> SpikingSequential:
    """What snnTorch's importer assumes, said in our frontend: dt = 1e-4, r = tau / dt, zero reset."""
    tau = 8e-4  # beta = 0.875
    lif = dict(tau=tau, r=tau / 1e-4, reset="zero", dt=1e-4)
    return SpikingSequential(nn.Linear(64, 32), LIFNeurons(32, v_threshold=1.0, **lif),
                             nn.Linear(32, 10), LIFNeurons(10, v_threshold=1.0, **lif))


def _our_terms() -> SpikingSequential:
    """Our frontend's own units (dt = 1, unit r: gains 1/tau), a current-based layer, an IF layer (a
    Leaky whose beta is 1), per-neuron thresholds and a leak voltage: the writer folds them into weights."""
    return SpikingSequential(
        nn.Linear(64, 32), CubaLIFNeurons(32, tau_syn=2.0, tau_mem=4.0, v_threshold=0.25, reset="zero"),
        nn.Linear(32, 24), IFNeurons(24, v_threshold=np.linspace(0.8, 1.2, 24), reset="zero"),
        nn.Linear(24, 10), LIFNeurons(10, tau=4.0, v_leak=0.05, v_threshold=0.2, reset="zero"))


def _conv() -> SpikingSequential:
    """Conv2d -> LIF -> sum pooling -> Flatten -> Linear -> LIF on 1x8x8 digits: per-channel folding, nirtorch's
    LPPool2d for SumPool2d, Flatten dims for batched tensors."""
    lif = dict(tau=4.0, reset="zero")
    return SpikingSequential(nn.Conv2d(1, 4, 3, padding=1), LIFNeurons((4, 8, 8), v_threshold=0.2, **lif),
                             nn.LPPool2d(1, 2), nn.Flatten(), nn.Linear(64, 10),
                             LIFNeurons(10, v_threshold=0.15, **lif))


# name: (builder, sample shape, epochs, spike probability per unit of pixel intensity)
MODELS = {"snntorch_terms": (_snntorch_terms, (64,), 3, 0.5), "our_terms": (_our_terms, (64,), 3, 0.5),
          "conv": (_conv, (1, 8, 8), 2, 0.8)}


def _trained(name: str, seed: int) -> SpikingSequential:
    """A few seconds of surrogate BPTT on digits (output spike counts over STEPS as logits)."""
    build, shape, epochs, _ = MODELS[name]
    seed_everything(seed)
    model, data = build(), load_digits(flatten=len(shape) == 1)
    run = lambda m, xb: m.run(constant_input(xb, STEPS))  # noqa: E731
    with torch_threads(1):  # several times faster than two threads at this size (train.torch_threads)
        history = fit(model, data, lambda m, xb: run(m, xb).counts, lambda m, xb: predict(run(m, xb)),
                      epochs=epochs, batch_size=64, lr=5e-3, seed=seed, progress=False)
    assert history.test_accuracy > 0.5, (name, history.test_accuracy)  # trained, not its initialisation
    return model


def _digits_as_spikes(name: str, seed: int) -> np.ndarray:
    """T steps of B test digits, each pixel a Bernoulli spike train at a fraction of its intensity."""
    _, shape, _, p = MODELS[name]
    x = load_digits(flatten=len(shape) == 1).x_test[:B]
    return (np.random.default_rng(seed).random((T, B, *shape)) < p * x).astype(np.float32)


def _recurrent_graph(path) -> np.ndarray:
    """A 2-cycle LIF <-> Affine (with bias) as snnTorch's RLeaky exports it, in our options (zero reset,
    immediate, dt 1e-3): the writer must turn it into a loop nirtorch runs as we do."""
    rng = np.random.default_rng(5)
    f32 = lambda *s, scale: rng.normal(0, scale, s).astype(np.float32)  # noqa: E731
    n = 24
    nodes = {"input": nir.Input(np.array([16])), "fc1": nir.Affine(f32(n, 16, scale=2.0), f32(n, scale=0.3)),
             "lif1": nir.LIF(tau=np.full(n, 5e-3, np.float32), r=np.full(n, 2.0, np.float32),
                             v_leak=np.zeros(n, np.float32), v_threshold=np.full(n, 1.0, np.float32),
                             v_reset=np.zeros(n, np.float32)),
             "w_rec": nir.Affine(f32(n, n, scale=0.6), f32(n, scale=0.2)),
             "fc2": nir.Linear(f32(10, n, scale=0.6)),
             "lif2": nir.LIF(tau=np.full(10, 4e-3, np.float32), r=np.ones(10, np.float32),
                             v_leak=np.zeros(10, np.float32), v_threshold=np.full(10, 0.5, np.float32),
                             v_reset=np.zeros(10, np.float32)),
             "output": nir.Output(np.array([10]))}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "w_rec"), ("w_rec", "lif1"), ("lif1", "fc2"),
             ("fc2", "lif2"), ("lif2", "output")]
    metadata = options_metadata(resolve_options(dt=1e-3, reset="zero", reset_timing="immediate"))
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False))
    return (np.random.default_rng(6).random((T, B, 16)) < 0.2).astype(np.float32)


def _export(model_file, tmp_path, name: str, *options: str):
    out = tmp_path / f"{name}.snntorch.nir"
    assert main(["export", str(model_file), "--for", "snntorch", "--out", str(out), *options]) == 0
    return out


def test_round_trip_through_snntorchs_importer(tmp_path):
    """Trained by our frontend, exported --for snntorch by the CLI, imported and run by snnTorch: every
    spike of every layer (hidden and output), every step and sample, equals our simulator's run of our
    own model file (no options: its metadata says them); so does our run of the written file (its
    metadata: dt 1e-4, zero reset in the spiking step). Also: a recurrent graph (the loop rewrite), and
    the first model lowered as snnTorch's Leaky(reset_mechanism='zero') resets (--preset snntorch
    --reset zero: before the decay of the next step, which spikes as a reset in the spiking step)."""
    cases = []  # (label, model file, input, export options)
    for index, name in enumerate(MODELS):
        model = _trained(name, seed=160 + index)
        model_file = tmp_path / f"{name}.nir"
        export_nir(model, model_file, "test_snntorch_export", MODELS[name][1])
        cases.append((name, model_file, _digits_as_spikes(name, 1600 + index), ()))
    cases.append(("leaky_zero_preset", cases[0][1], cases[0][2], ("--preset", "snntorch", "--reset", "zero")))
    recurrent = tmp_path / "recurrent.nir"
    cases.append(("recurrent", recurrent, _recurrent_graph(recurrent), ()))
    triples = []
    for label, model_file, x, options in cases:
        np.save(tmp_path / f"{label}.npy", x)
        exported = _export(model_file, tmp_path, label, *options)
        triples += [exported, tmp_path / f"{label}.npy", tmp_path / f"{label}.npz"]
    side("snntorch", "run", *triples)
    for (label, model_file, x, _), exported in zip(cases, triples[0::3]):
        theirs = np.load(tmp_path / f"{label}.npz")
        layers = [k for k, v in nir.read(str(exported)).nodes.items() if isinstance(v, (nir.LIF, nir.CubaLIF))]
        assert sorted(k.split(":", 1)[1] for k in theirs.files if k.startswith("spikes:")) == sorted(layers)
        for run in (ours(model_file, x, layers), ours(exported, x, layers)):
            for node in layers:
                got = np.asarray(run.recordings[node]["s"]).reshape(theirs[f"spikes:{node}"].shape)
                rate = float(got.mean())
                assert 0.02 <= rate <= 0.2, f"{label} {node}: firing rate {rate:.3f} outside 2-20%"
                bad = np.argwhere(got != theirs[f"spikes:{node}"])
                assert bad.size == 0, f"{label} {node}: {len(bad)} spikes differ, first at (t, b, n) {tuple(bad[0])}"
            np.testing.assert_array_equal(np.asarray(run.outputs["output"]).reshape(theirs["output"].shape),
                                          theirs["output"], err_msg=label)


def _lif_model(**lif) -> SpikingSequential:
    torch.manual_seed(0)
    options = dict(reset="zero", **lif)
    return SpikingSequential(nn.Linear(64, 16), LIFNeurons(16, **options), nn.Linear(16, 10), LIFNeurons(10, **options))


REFUSALS = {  # what our models can have and snnTorch's importer cannot express: (model, CLI options, words)
    "subtract": (lambda: SpikingSequential(nn.Linear(64, 10), IFNeurons(10)), (), "resets by subtraction"),
    "delayed": (_lif_model, ("--reset-timing", "delayed"), "waits for the next step"),
    ">=": (_lif_model, ("--threshold", ">="), "v >= threshold"),
    "many": (_lif_model, ("--spikes-per-step", "many"), "floor(v / threshold) spikes"),
    "initial_potential": (lambda: _lif_model(initial_potential=0.5), (), "starts at v = 0.5"),
    "v_reset": (lambda: _lif_model(v_reset=0.1), (), "resets to v_reset = 0.1"),
    "cuba_v_leak": (lambda: SpikingSequential(nn.Linear(64, 10), CubaLIFNeurons(10, v_leak=0.1)), (), "v_leak"),
    "sum_pool_3x3": (lambda: SpikingSequential(nn.Conv2d(1, 2, 3, padding=1), LIFNeurons((2, 8, 8)), nn.LPPool2d(1, 3),
                                               nn.Flatten(), nn.Linear(8, 10), LIFNeurons(10)), (), "LPPool2d"),
    "gain_per_pixel": (lambda: SpikingSequential(nn.Conv2d(1, 2, 3, padding=1), LIFNeurons(
        (2, 8, 8), v_threshold=np.linspace(0.5, 1.5, 128).reshape(2, 8, 8))), (), "varies within a channel"),
}
NODE = {"subtract": "if1", "sum_pool_3x3": "sumpool2d2", "cuba_v_leak": "cubalif1"}  # the rest: 'lif1'


@pytest.mark.parametrize("case", REFUSALS)
def test_refuses_what_snntorch_cannot_express(case, tmp_path, capsys):
    """Exit 2, exactly one stderr line naming the node and the problem, and no file written."""
    build, options, words = REFUSALS[case]
    model = build()
    model_file = tmp_path / "model.nir"
    shape = (1, 8, 8) if isinstance(model[0], nn.Conv2d) else (64,)
    export_nir(model, model_file, "test_snntorch_export", shape)
    capsys.readouterr()
    out = tmp_path / "f.nir"
    assert main(["export", str(model_file), "--for", "snntorch", "--out", str(out), *options]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    node = NODE.get(case, "lif1")
    assert len(lines) == 1 and f"node '{node}'" in lines[0] and words in lines[0], lines
    assert not out.exists()


def _graph_file(path, readout: str) -> None:
    """input -> fc -> lif -> fc2 -> readout; "LI": a leaky readout, "loop": lif also fed back through
    fc2 -> lif2 -> fc3 -> lif (a cycle through two neurons, which nirtorch would run one step late twice)."""
    zeros, ones = np.zeros(4, np.float32), np.ones(4, np.float32)
    lif = lambda: nir.LIF(tau=ones * 1e-3, r=ones, v_leak=zeros, v_threshold=ones, v_reset=zeros)  # noqa: E731
    dense = lambda: nir.Affine(np.eye(4, dtype=np.float32), zeros)  # noqa: E731
    nodes = {"input": nir.Input(np.array([4])), "fc": dense(), "lif": lif(), "fc2": dense(),
             "out": nir.LI(tau=ones * 1e-3, r=ones, v_leak=zeros) if readout == "LI" else lif(),
             "output": nir.Output(np.array([4]))}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "fc2"), ("fc2", "out"), ("out", "output")]
    if readout == "loop":
        nodes["fc3"] = dense()
        edges += [("out", "fc3"), ("fc3", "lif")]
    metadata = options_metadata(resolve_options(dt=1e-4, reset="zero"))
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False))


@pytest.mark.parametrize("readout, node, words", [("LI", "out", "LI has no mapping"),
                                                  ("loop", "lif", "not a neuron <-> Affine/Linear loop")])
def test_refuses_graphs_snntorchs_importer_cannot_run(readout, node, words, tmp_path, capsys):
    """Graphs from other exporters: a non-spiking readout, recurrence other than a neuron <-> dense loop."""
    _graph_file(tmp_path / "g.nir", readout)
    out = tmp_path / "f.nir"
    assert main(["export", str(tmp_path / "g.nir"), "--for", "snntorch", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"node '{node}'" in lines[0] and words in lines[0], lines
    assert not out.exists()
