"""HNSG on digits: the straight-through score gradient (with and without the sign term), learning vs
chance, the masked export (exact zeros), firing rates, and the exported graph on the simulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikestack.errors import OptionsError
from spikestack.frontend.methods import (
    SupermaskLinear, build_lif_mlp, evaluate_hnsg, export_hnsg, materialise_supermasks, train_hnsg, train_hnsg_model,
)
from spikestack.frontend.methods.hnsg import firing_rate, topk_mask
from spikestack.frontend.neurons import constant_input, predict
from spikestack.frontend.train import torch_threads
from spikestack.ir.lower import lower_graph
from spikestack.ir.options import resolve_options
from spikestack.ir.validate import load_graph
from spikestack.simulators import simulate

STEPS = 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(digits):
    with torch_threads(1):
        return {sign: train_hnsg(digits, hidden=(128,), epochs=5, seed=0, sign_term=sign, progress=False)[0]
                for sign in (True, False)}


def test_topk_mask_keeps_exactly_k_largest_magnitudes():
    scores = torch.tensor([[0.1, -0.9, 0.3], [-0.2, 0.5, 0.0]])
    mask = topk_mask(scores, keep=0.5)  # k = 3 of 6: |-0.9|, |0.5|, |0.3| (|-0.2| loses to |0.3|)
    assert mask.tolist() == [[0, 1, 1], [0, 1, 0]]


@pytest.mark.parametrize("sign_term", [True, False])
def test_score_gradient_is_straight_through_with_and_without_sign(sign_term):
    torch.manual_seed(0)
    layer = SupermaskLinear(6, 4, keep=0.5, sign_term=sign_term)
    with torch.no_grad():
        layer.scores[0, :3] *= -1  # make sure both signs are present
    x = torch.randn(5, 6)
    upstream = torch.randn(5, 4)
    (layer(x) * upstream).sum().backward()
    grad_w_eff = upstream.T @ x  # dL/dW_eff of L = sum(upstream * x W_eff^T)
    expected = grad_w_eff * layer.weight * (torch.sign(layer.scores.detach()) if sign_term else 1.0)
    torch.testing.assert_close(layer.scores.grad, expected)
    assert layer.weight.grad is None and not layer.weight.requires_grad  # weights stay frozen


def test_weights_are_signed_kaiming_constants():
    layer = SupermaskLinear(50, 20)
    np.testing.assert_allclose(layer.weight.abs().numpy(), np.sqrt(2 / 50), rtol=1e-6)
    assert 0.3 < (layer.weight > 0).float().mean() < 0.7


def test_sign_term_learns_and_its_absence_stays_at_chance(trained, digits):
    # Measured (hidden 128, 5 epochs, seeds 0/1): 0.90 with the sign term, 0.04-0.06 without
    # (the output layer falls silent: harmful weights collect large negative scores and stay kept).
    with_sign, _ = evaluate_hnsg(trained[True], digits.x_test, digits.y_test, STEPS)
    without, _ = evaluate_hnsg(trained[False], digits.x_test, digits.y_test, STEPS)
    assert with_sign >= 0.8
    assert without <= 0.25


def test_firing_rate_is_spikes_per_neuron_per_step(trained, digits):
    model = trained[True]
    x = torch.as_tensor(digits.x_test[:50])
    readout = model.run(constant_input(x, STEPS))
    neurons = 128 + 10
    torch.testing.assert_close(firing_rate(model, x, STEPS), readout.spikes / (neurons * STEPS))
    _, mean_rate = evaluate_hnsg(model, digits.x_test, digits.y_test, STEPS)
    assert 0.0 < mean_rate < 0.5


def test_export_keeps_only_masked_weights_and_simulates_like_torch(trained, digits, tmp_path):
    model = trained[True]
    path = export_hnsg(model, tmp_path / "hnsg.nir", digits.sample_shape)
    graph = load_graph(path)
    layers = [m for m in model if isinstance(m, SupermaskLinear)]
    weights = [graph.nodes[n].weight for n in graph.order if graph.type_of(n) == "Linear"]
    assert [graph.type_of(n) for n in graph.order] == ["Input", "Linear", "LIF", "Linear", "LIF", "Output"]
    for layer, w in zip(layers, weights):
        mask = topk_mask(layer.scores, layer.keep).numpy().astype(bool)
        np.testing.assert_array_equal(w[~mask], 0.0)  # exact zeros where the mask drops a weight
        np.testing.assert_array_equal(w[mask], layer.weight.numpy()[mask])
        assert (w != 0).sum() == round(0.5 * w.size)
    program = lower_graph(graph, resolve_options(graph.metadata))
    x = digits.x_test[:100]
    last = program.neuron_ops[-1].name
    run = simulate(program, np.broadcast_to(x, (STEPS, *x.shape)).copy(), record=[last], count=False)
    counts, v = run.output.sum(axis=0), run.recordings[last]["v"][-1]
    sim = np.where(counts == counts.max(axis=1, keepdims=True), v, -np.inf).argmax(axis=1)
    with torch.no_grad():
        ours = predict(materialise_supermasks(model).run(constant_input(torch.as_tensor(x), STEPS))).numpy()
    assert (sim == ours).mean() >= 0.98  # float32 sums in another order may flip a rare tie
    assert abs((sim == digits.y_test[:100]).mean() - (ours == digits.y_test[:100]).mean()) <= 0.02


def test_dense_baseline_has_same_architecture():
    dense = build_lif_mlp((64,), (32,), 10, supermask=False)
    sparse = build_lif_mlp((64,), (32,), 10, supermask=True)
    assert [type(m).__name__ for m in dense] == ["Linear", "LIFNeurons", "Linear", "LIFNeurons"]
    assert [type(m).__name__ for m in sparse] == ["SupermaskLinear", "LIFNeurons", "SupermaskLinear", "LIFNeurons"]
    assert dense[0].bias is None


def test_cli_entry_returns_exportable_model(digits, tmp_path):
    result = train_hnsg_model(digits, hidden=(32,), epochs=1, progress=False)
    path = result.export(tmp_path / "cli.nir")
    assert load_graph(path).metadata["spikestack"]["method"] == "hnsg"


@pytest.mark.parametrize("kwargs", [dict(keep=0.0), dict(keep=1.5), dict(init="uniform")])
def test_bad_options_raise_one_line(kwargs):
    with pytest.raises(OptionsError):
        SupermaskLinear(4, 2, **kwargs)


def test_rate_penalty_lowers_firing_and_keeps_learning(trained, digits):
    # The same seed and schedule as `trained[True]`, plus the firing-rate cost in the loss.
    with torch_threads(1):
        penalised, _ = train_hnsg(digits, hidden=(128,), epochs=5, seed=0, rate_penalty=1.0, progress=False)
    acc, rate = evaluate_hnsg(penalised, digits.x_test, digits.y_test, STEPS)
    acc0, rate0 = evaluate_hnsg(trained[True], digits.x_test, digits.y_test, STEPS)
    print(f"rate {rate0:.3f} -> {rate:.3f}, accuracy {acc0:.3f} -> {acc:.3f}")
    assert rate < 0.8 * rate0
    assert acc >= 0.7
