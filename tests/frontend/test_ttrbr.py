"""TTRBR conversion on digits with a small residual net: batch-norm folding, threshold tuning, the SNN
against the ANN at large T, weights-only model files, and the exported graph on the simulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spikestack.errors import DataError, OptionsError, UnsupportedError
from spikestack.frontend.data import load_digits
from spikestack.frontend.methods import (
    ResNetSpec, TaskTuning, build_resnet, convert_ann, convert_file, load_ann, save_ann, snn_accuracy,
)
from spikestack.frontend.methods.ttrbr import trace_ann
from spikestack.frontend.neurons import IFNeurons, constant_input, predict
from spikestack.frontend.train import fit, seed_everything, torch_threads
from spikestack.ir.lower import lower_graph
from spikestack.ir.options import resolve_options
from spikestack.ir.validate import load_graph
from spikestack.simulators import simulate

SPEC = ResNetSpec(in_shape=(1, 8, 8), width=8, blocks=3, stages=2, stem_stride=1)  # includes a projection block


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_digits(flatten=False)


@pytest.fixture(scope="module")
def ann(digits):
    seed_everything(0)
    model = build_resnet(SPEC)
    with torch_threads(1):
        fit(model, digits, lambda m, x: m(x), lambda m, x: m(x).argmax(1), epochs=10, lr=3e-3, progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def conversions(ann, digits):
    calib = digits.x_train[:256]
    return {kind: convert_ann(ann, calib, steps=8, threshold=kind, restructure=False) for kind in ("max", "percentile", "search")}


def ann_predictions(model, x) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(x)).argmax(1).numpy()


def simulated_decisions(graph, x: np.ndarray, steps: int) -> np.ndarray:
    """The exported graph on the simulator with x as a constant current; decided as torch's readout
    does (most spikes, ties to the higher final membrane, then the lower index), written out here."""
    program = lower_graph(graph, resolve_options(graph.metadata))
    last = program.neuron_ops[-1].name
    run = simulate(program, np.broadcast_to(x, (steps, *x.shape)).copy(), record=[last], count=False)
    counts, v = run.output.sum(axis=0), run.recordings[last]["v"][-1]
    return np.where(counts == counts.max(axis=1, keepdims=True), v, -np.inf).argmax(axis=1)


def test_batchnorm_is_folded_without_changing_the_function(ann, digits):
    traced = trace_ann(ann)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in traced.modules())
    x = torch.as_tensor(digits.x_test[:64])
    with torch.no_grad():
        torch.testing.assert_close(traced(x), ann(x), atol=1e-4, rtol=1e-4)


def test_percentile_thresholds_are_at_most_max_thresholds(conversions):
    top, pct = conversions["max"].thresholds, conversions["percentile"].thresholds
    assert top.keys() == pct.keys() and len(top) == 2 * SPEC.blocks + 2  # stem, 2 per block, output
    hidden = [name for name in top if name != "output_if"]
    for name in hidden:
        assert 0 < pct[name] <= top[name], name
    assert sum(pct[n] < top[n] for n in hidden) >= len(hidden) // 2  # the percentile really clips
    # The output layer integrates (threshold steps x largest logit) under every kind of tuning.
    assert pct["output_if"] == pytest.approx(top["output_if"], rel=1e-5)


def test_search_beats_max_on_calibration_error_of_first_layer(ann, digits):
    # The grid holds the max itself, and the first layer's input current is exact, so the searched
    # threshold can only lower that layer's calibration error.
    calib = torch.as_tensor(digits.x_train[:256])
    errors = {}
    for kind in ("max", "search"):
        snn = convert_ann(ann, calib, steps=8, threshold=kind, restructure=False).snn
        first = next(name for name, m in snn.layers.items() if isinstance(m, IFNeurons))
        conv = snn.layers[snn.sources[first][0]]
        with torch.no_grad():
            current = conv(calib).unsqueeze(0).expand(8, *conv(calib).shape)
            rate = snn.layers[first](current).mean(0) * snn.layers[first].coef_v_threshold.flatten()[0]
            target = torch.relu(conv(calib))
        errors[kind] = float(((rate - target) ** 2).mean())
    assert errors["search"] <= errors["max"] + 1e-9


@pytest.mark.parametrize("kind, restructure", [("max", False), ("search", False), ("max", True), ("search", True)])
def test_snn_matches_ann_at_large_T(ann, conversions, digits, kind, restructure):
    conversion = conversions[kind] if not restructure else convert_ann(ann, digits.x_train[:256], 8, kind, True)
    x, y = digits.x_test[:150], digits.y_test[:150]
    with torch.no_grad():
        snn_pred = predict(conversion.snn.run(constant_input(torch.as_tensor(x), 256))).numpy()
    # Measured: 99.3-100% equal predictions at T=256 (40-50 fewer at T=8), accuracy within 0.7 pt.
    assert (snn_pred == ann_predictions(ann, x)).mean() >= 0.97
    assert abs((snn_pred == y).mean() - (ann_predictions(ann, x) == y).mean()) <= 0.02


def test_accuracy_grows_with_steps(conversions, digits):
    acc = snn_accuracy(conversions["search"].snn, digits.x_test[:200], digits.y_test[:200], [2, 32])
    assert acc[32] >= acc[2]


@pytest.mark.parametrize("restructure", [False, True])
def test_export_simulates_like_torch(ann, digits, tmp_path, restructure):
    conversion = convert_ann(ann, digits.x_train[:128], steps=8, threshold="percentile", restructure=restructure)
    graph = load_graph(conversion.export(tmp_path / "resnet.nir"))
    assert graph.metadata["spikestack"]["method"] == "ttrbr"
    x = digits.x_test[:100]
    sim = simulated_decisions(graph, x, 8)
    with torch.no_grad():
        ours = predict(conversion.snn.run(constant_input(torch.as_tensor(x), 8))).numpy()
    assert (sim == ours).mean() >= 0.98  # float32 sums in another order may flip a rare tie
    assert abs((sim == digits.y_test[:100]).mean() - (ours == digits.y_test[:100]).mean()) <= 0.02


def test_model_file_round_trip_is_weights_only(ann, digits, tmp_path):
    path = save_ann(ann, SPEC.to_dict(), tmp_path / "resnet.pt")
    model, arch = load_ann(path)
    assert ResNetSpec.from_dict(arch) == SPEC
    np.testing.assert_array_equal(ann_predictions(model, digits.x_test), ann_predictions(ann, digits.x_test))
    conversion = convert_file(path, digits, steps=8, threshold="max", restructure=False, out=tmp_path / "m.nir")
    assert load_graph(tmp_path / "m.nir").metadata["spikestack"]["thresholds"] == "max"
    assert set(conversion.thresholds) == set(convert_ann(ann, digits.x_train[:256], 8, "max", False).thresholds)


def test_model_file_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "spikestack-ann/1", "arch": {"kind": "resnet"}, "state_dict": {}, "x": ResNetSpec()}, path)
    with pytest.raises(DataError, match="weights-only"):
        load_ann(path)
    with pytest.raises(DataError, match="no such"):
        load_ann(tmp_path / "missing.pt")


def test_bad_requests_raise_one_line(ann, digits):
    with pytest.raises(OptionsError):
        convert_ann(ann, digits.x_train[:8], threshold="mean")
    with pytest.raises(UnsupportedError, match="Sigmoid"):
        convert_ann(nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Sigmoid()), digits.x_train[:8])
    with pytest.raises(OptionsError):
        ResNetSpec(blocks=1, stages=2)


@pytest.mark.parametrize("restructure", [False, True])
def test_bias_calibration_brings_the_snn_closer_to_the_ann(ann, digits, tmp_path, restructure):
    # Reference: the ANN's own decisions. Measured at T=4 on 300 images: agreement 0.73 -> 0.88
    # (plain) and 0.81 -> 0.91 (restructured) on the machine the test was written on; on an AMD EPYC
    # the same seeded training gives another ANN (accuracy 0.94, not 0.967), whose restructured
    # conversion already agrees 0.897 before calibration (0.903 after), plain 0.827 -> 0.907. So the
    # 5-point gain is asserted where the uncalibrated SNN is far from the ANN, and a gain wherever.
    x = digits.x_test[:300]
    want = ann_predictions(ann, x)
    agreement = {}
    for calibrate in (False, True):
        conversion = convert_ann(ann, digits.x_train[:256], 4, "search", restructure, calibrate_bias=calibrate)
        with torch.no_grad():
            ours = predict(conversion.snn.run(constant_input(torch.as_tensor(x), 4))).numpy()
        agreement[calibrate] = (ours == want).mean()
    assert agreement[True] > agreement[False]
    if agreement[False] < 0.85:
        assert agreement[True] >= agreement[False] + 0.05
    # The corrected biases travel through NIR: the simulator decides as torch does.
    sim = simulated_decisions(load_graph(conversion.export(tmp_path / "calibrated.nir")), x, 4)
    assert (sim == ours).mean() >= 0.98


def test_bias_calibration_needs_the_search(ann, digits):
    with pytest.raises(OptionsError, match="calibrate_bias needs threshold='search'"):
        convert_ann(ann, digits.x_train[:8], threshold="max", calibrate_bias=True)


@pytest.fixture(scope="module")
def task_tuned(ann, digits):
    """Restructured search conversions at T=4 on the same calibration images, without and with task tuning."""
    calib = digits.x_train[:256]
    tuning = TaskTuning(digits.x_train, digits.y_train, snn_samples=len(digits.x_train))
    return {tuned: convert_ann(ann, calib, 4, "search", True, tuning=tuning if tuned else None) for tuned in (False, True)}


def test_task_tuning_brings_the_snn_closer_to_the_ann(ann, digits, task_tuned):
    # Reference: the ANN's own decisions (accuracy 0.967) and the labels. Measured at T=4 on 300
    # images: agreement with the ANN 0.81 -> 0.93, accuracy 0.79 -> 0.91, where the test was written;
    # on an AMD EPYC (another ANN from the same seed: the untuned SNN already agrees 0.897) 0.897 ->
    # 0.913-0.923 and 0.88 -> 0.913: the gain asserted is what holds on both.
    x, y = digits.x_test[:300], digits.y_test[:300]
    want = ann_predictions(ann, x)
    decided = {}
    for tuned, conversion in task_tuned.items():
        with torch.no_grad():
            decided[tuned] = predict(conversion.snn.run(constant_input(torch.as_tensor(x), 4))).numpy()
    agreement = {tuned: (d == want).mean() for tuned, d in decided.items()}
    accuracy = {tuned: (d == y).mean() for tuned, d in decided.items()}
    assert agreement[True] >= agreement[False] + 0.015
    assert accuracy[True] >= accuracy[False] + 0.025


def test_task_tuning_keeps_the_anns_weights(task_tuned):
    # Only thresholds (folded into the weights that read a layer's spikes: one factor per weighted
    # node) and biases may change: every weight tensor is the untuned one times a single number.
    before, after = (dict(c.snn.layers.named_modules()) for c in (task_tuned[False], task_tuned[True]))
    weighted = [n for n, m in before.items() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) >= 8
    for name in weighted:
        w0, w1 = before[name].weight.detach().numpy(), after[name].weight.detach().numpy()
        mask = np.abs(w0) > 1e-6
        ratio = w1[mask] / w0[mask]
        np.testing.assert_allclose(ratio, np.median(ratio), rtol=1e-4, err_msg=name)
    assert task_tuned[True].graph.metadata["spikestack"]["task_tuned"] is True


def test_task_tuned_export_simulates_like_torch(digits, task_tuned, tmp_path):
    conversion = task_tuned[True]
    x = digits.x_test[:100]
    sim = simulated_decisions(load_graph(conversion.export(tmp_path / "tuned.nir")), x, 4)
    with torch.no_grad():
        ours = predict(conversion.snn.run(constant_input(torch.as_tensor(x), 4))).numpy()
    assert (sim == ours).mean() >= 0.98


def test_task_tuning_rejects_bad_requests(digits):
    with pytest.raises(DataError, match="as many labels"):
        TaskTuning(digits.x_train[:10], digits.y_train[:9])
    with pytest.raises(OptionsError, match="snn_samples"):
        TaskTuning(digits.x_train[:10], digits.y_train[:10], snn_samples=-1)
