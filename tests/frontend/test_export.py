"""The exporter: NIR structure, field names and units read back through ir, and the exported graph run by
the project's simulator (read with no options, lowered by ir) predicting what the torch model does."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from spikestack.errors import OptionsError, UnsupportedError
from spikestack.frontend.data import load_digits
from spikestack.frontend.export import export_nir, model_options
from spikestack.frontend.methods.noise_t1 import run_steps, train_demo_model
from spikestack.frontend.methods.s3nn import build_s3nn_convnet, export_s3nn
from spikestack.frontend.neurons import IFNeurons, LIFNeurons, SpikingSequential, predict
from spikestack.ir.lower import lower_graph
from spikestack.ir.options import LoweringOptions, resolve_options
from spikestack.ir.validate import load_graph
from spikestack.simulators import simulate


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def simulated_predictions(path, x: np.ndarray, steps: int) -> np.ndarray:
    """Read the file with no options, lower it, run the project's simulator (float64, x every step).

    Predictions: most output spikes, ties to the higher final membrane, then the lowest index.
    """
    graph = load_graph(path)
    program = lower_graph(graph, resolve_options(graph.metadata))
    last = [op.name for op in program.ops if op.is_neuron][-1]
    x_seq = np.broadcast_to(x, (steps, *x.shape)).copy()
    run = simulate(program, x_seq, mode="float", record=[last], count=False, dtype=np.float64)
    counts, v = run.output.sum(axis=0), run.recordings[last]["v"][-1]
    top = counts == counts.max(axis=1, keepdims=True)
    return np.where(top, v, -np.inf).argmax(axis=1)


def small_model() -> SpikingSequential:
    torch.manual_seed(0)
    return SpikingSequential(nn.Linear(4, 3), IFNeurons(3, v_threshold=0.75, initial_potential=0.5),
                             nn.Linear(3, 2, bias=False), IFNeurons(2, v_threshold=[1.0, 2.0], initial_potential=0.5))


def test_graph_structure_fields_and_metadata(tmp_path):
    model = small_model()
    graph = load_graph(export_nir(model, tmp_path / "m.nir", "noise_t1", (4,)))
    assert [graph.type_of(n) for n in graph.order] == ["Input", "Affine", "IF", "Linear", "IF", "Output"]
    affine, if1, linear, if2 = (graph.nodes[n] for n in graph.order[1:5])
    np.testing.assert_array_equal(affine.weight, model[0].weight.detach().numpy())
    np.testing.assert_array_equal(affine.bias, model[0].bias.detach().numpy())
    np.testing.assert_array_equal(linear.weight, model[2].weight.detach().numpy())
    for node, n in ((if1, 3), (if2, 2)):  # per-neuron arrays, never scalars (NIR issue 176)
        assert node.r.shape == node.v_threshold.shape == node.v_reset.shape == (n,)
    np.testing.assert_array_equal(if1.v_threshold, [0.75] * 3)
    np.testing.assert_array_equal(if2.v_threshold, [1.0, 2.0])
    assert graph.out_shapes[graph.outputs[0]] == (2,)
    resolved = resolve_options(graph.metadata)  # no options given: everything comes from the file
    assert resolved == LoweringOptions(dt=1.0, reset="subtract", reset_timing="immediate", initial_potential=0.5)
    assert graph.metadata["spikestack"]["method"] == "noise_t1"
    program = lower_graph(graph, resolved)
    np.testing.assert_allclose(program.op(graph.order[4]).params.v_init, [0.5, 1.0])


def test_lif_tau_is_written_in_the_unit_of_dt(tmp_path):
    tau = np.array([5.0, 10.0, 20.0])
    model = SpikingSequential(nn.Linear(2, 3), LIFNeurons(3, tau=tau, r=2.0, v_leak=0.5, dt=0.5))
    graph = load_graph(export_nir(model, tmp_path / "lif.nir", "bptt", (2,)))
    lif = graph.nodes[graph.order[2]]
    np.testing.assert_array_equal(lif.tau, tau)
    np.testing.assert_array_equal(lif.r, [2.0] * 3)
    np.testing.assert_array_equal(lif.v_leak, [0.5] * 3)
    coeffs = lower_graph(graph, resolve_options(graph.metadata)).op(graph.order[2]).params
    np.testing.assert_allclose(coeffs.alpha_v, 1 - 0.5 / tau)  # Euler with dt = 0.5
    np.testing.assert_allclose(coeffs.gain_v, 0.5 / tau * 2.0)


def test_convnet_export_runs_like_torch(tmp_path):
    model = build_s3nn_convnet((1, 8, 8), 10).double()
    path = export_s3nn(model, tmp_path / "conv.nir", (1, 8, 8))
    graph = load_graph(path)
    assert graph.metadata["spikestack"]["method"] == "s3nn"
    kinds = [graph.type_of(n) for n in graph.order]
    assert kinds == ["Input", "Conv2d", "IF", "SumPool2d", "Conv2d", "IF", "SumPool2d", "Flatten", "Affine", "IF", "Output"]
    assert graph.out_shapes[graph.order[7]] == (32 * 2 * 2,)
    x = load_digits(flatten=False).x_test[:60].astype(np.float64)
    with torch.no_grad():
        want = predict(model.run(torch.tensor(x)[None])).numpy()
    got = simulated_predictions(path, x, 1)
    np.testing.assert_array_equal(got, want)


def test_trained_digits_model_predicts_the_same_after_export(tmp_path):
    digits = load_digits()
    trained = train_demo_model(digits, epochs=4)
    path = trained.export(tmp_path / "d.nir")
    model64 = copy.deepcopy(trained.model).double()  # same weights; float64 so no threshold tie flips
    x = digits.x_test.astype(np.float64)
    for steps in (1, 8):
        with torch.no_grad():
            want = predict(run_steps(model64, torch.tensor(x), steps)).numpy()
            want32 = predict(run_steps(trained.model, torch.tensor(digits.x_test), steps)).numpy()
        got = simulated_predictions(path, x, steps)
        np.testing.assert_array_equal(got, want)
        assert (want32 == want).mean() > 0.99
        assert (got == digits.y_test).mean() > 0.85


def test_export_rejects_what_it_cannot_describe(tmp_path):
    model = small_model()
    with pytest.raises(OptionsError):
        export_nir(model, tmp_path / "b.nir", "", (4,))
    with pytest.raises(OptionsError):
        export_nir(model, tmp_path / "c.nir", "noise_t1", (0,))
    with pytest.raises(OptionsError, match="Linear cannot take input of shape"):
        export_nir(model, tmp_path / "c.nir", "noise_t1", (5,))
    relu = SpikingSequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), IFNeurons(2))
    with pytest.raises(UnsupportedError, match="ReLU"):
        export_nir(relu, tmp_path / "d.nir", "x", (4,))
    lp2 = SpikingSequential(nn.Conv2d(1, 2, 3), IFNeurons((2, 6, 6)), nn.LPPool2d(2, 2), nn.Flatten(), nn.Linear(18, 2), IFNeurons(2))
    with pytest.raises(UnsupportedError, match="norm_type"):
        export_nir(lp2, tmp_path / "e.nir", "x", (1, 8, 8))
    mixed = SpikingSequential(nn.Linear(4, 3), IFNeurons(3), nn.Linear(3, 2), IFNeurons(2, initial_potential=0.5))
    with pytest.raises(OptionsError, match="disagree"):
        model_options(mixed)
