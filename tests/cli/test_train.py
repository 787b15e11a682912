"""`spikestack train <method>` and `spikestack convert` on digits: the files they write read back through ir,
the simulator reproducing the accuracy (and spikes) they report, hand counts of what each method promises,
and bad input as one line on stderr with exit 2, inputs untouched and no model written."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest
import torch

from spikestack.cli import main
from spikestack.frontend.data import load_digits
from spikestack.frontend.methods import ResNetSpec, build_resnet, save_ann
from spikestack.ir import load_graph, lower_graph, resolve_options
from spikestack.simulators import simulate

FAST = ["--threads", "1", "--no-progress"]
# Accuracies may differ by one sample: torch runs in float32, the simulator here in float64, so a value
# within rounding of a threshold could fall on the other side (none did when this was written).


def simulated(path, x: np.ndarray, steps: int):
    """Read the file with no options, lower it, run the simulator (float64, x as current every step).
    Predictions: most output spikes, ties to the higher final membrane, then the lowest index."""
    graph = load_graph(path)
    program = lower_graph(graph, resolve_options(graph.metadata))
    last = program.neuron_ops[-1].name
    run = simulate(program, np.broadcast_to(x, (steps, *x.shape)).astype(np.float64), record=[last], dtype=np.float64)
    counts, v = run.output.sum(axis=0), run.recordings[last]["v"][-1]
    pred = np.where(counts == counts.max(axis=1, keepdims=True), v, -np.inf).argmax(axis=1)
    # Spikes per sample, summed over every neuron layer (output included) and every step.
    spikes = sum(run.counts.per_node[op.name]["spikes_out"].sum(axis=0) for op in program.neuron_ops)
    return pred, spikes, program


def train(tmp_path, capsys, method: str, *options: str) -> tuple[dict, str]:
    out, summary = tmp_path / f"{method}.nir", tmp_path / f"{method}.json"
    assert main(["train", method, "--dataset", "digits", "--out", str(out), "--json", str(summary), *FAST, *options]) == 0
    stdout = capsys.readouterr().out
    result = json.loads(summary.read_text())
    assert result["model"] == str(out) and f"wrote {out}" in stdout and f"wrote {summary}" in stdout
    return result, stdout


def test_s3nn_file_reproduces_printed_accuracy_and_spikes(tmp_path, capsys):
    result, stdout = train(tmp_path, capsys, "s3nn", "--depth", "3", "--width", "64", "--epochs", "2", "--lr", "1e-2")
    assert f"test accuracy {100 * result['test_accuracy']:.2f}%" in stdout and "spikes per sample" in stdout
    digits = load_digits()
    pred, spikes, program = simulated(result["model"], digits.x_test, steps=1)
    assert load_graph(result["model"]).metadata["spikestack"]["method"] == "s3nn"
    assert sum(op.kind == "Affine" for op in program.ops) == 3
    assert (pred == digits.y_test).mean() == pytest.approx(result["test_accuracy"], abs=1.01 / len(pred))
    assert result["test_accuracy"] > 0.5
    assert spikes.mean() == pytest.approx(result["spikes_per_sample"], rel=1e-3)


def test_noise_t1_file_reproduces_accuracy_at_every_t(tmp_path, capsys):
    result, stdout = train(tmp_path, capsys, "noise-t1", "--hidden", "64", "--epochs", "2", "--eval-steps", "1", "4", "16")
    digits = load_digits()
    assert list(result["accuracy_at_steps"]) == ["1", "4", "16"] and result["hidden"] == [64]
    assert result["accuracy_at_steps"]["1"] == result["test_accuracy"]
    for t, acc in result["accuracy_at_steps"].items():
        assert f"T={t:<4} {100 * acc:.2f}%" in stdout
        pred, _, _ = simulated(result["model"], digits.x_test, steps=int(t))
        assert (pred == digits.y_test).mean() == pytest.approx(acc, abs=1.01 / len(pred)), t
    assert result["accuracy_at_steps"]["16"] > 0.5


def test_hnsg_keeps_the_fraction_per_layer_and_reports_the_firing_rate(tmp_path, capsys):
    result, stdout = train(tmp_path, capsys, "hnsg", "--hidden", "48", "--keep", "0.3", "--steps", "4", "--epochs", "1")
    graph = load_graph(result["model"])
    weights = [graph.nodes[n].weight for n in graph.order if graph.type_of(n) == "Linear"]
    assert [w.shape for w in weights] == [(48, 64), (10, 48)]
    for w in weights:  # signed-constant weights are never 0 themselves: every zero is a dropped weight
        assert np.count_nonzero(w) == round(0.3 * w.size)
    digits = load_digits()
    pred, spikes, _ = simulated(result["model"], digits.x_test, steps=4)
    rate = spikes.mean() / ((48 + 10) * 4)
    assert rate == pytest.approx(result["firing_rate"], rel=1e-3) and 0 < rate < 1
    assert f"mean firing rate {result['firing_rate']:.4f}" in stdout
    assert (pred == digits.y_test).mean() == pytest.approx(result["test_accuracy"], abs=1.01 / len(pred))


def test_spide_writes_a_graph_with_a_recurrent_edge(tmp_path, capsys):
    result, stdout = train(tmp_path, capsys, "spide", "--hidden", "24", "--steps", "8", "--backward-steps", "16",
                           "--epochs", "1", "--limit", "200")
    graph = load_graph(result["model"])
    assert graph.back_edges == {("feedback", "hidden0")}
    assert (result["steps"], result["backward_steps"], result["hidden"]) == (8, 16, [24])
    assert "ternary backward spikes per training sample" in stdout


def test_resnet_then_convert_gives_one_node_per_layer_of_the_resnet(tmp_path, capsys):
    ann = tmp_path / "ann.pt"
    assert main(["train", "resnet", "--dataset", "digits", "--blocks", "3", "--width", "4", "--epochs", "1",
                 "--out", str(ann), *FAST]) == 0
    assert f"wrote {ann}" in capsys.readouterr().out
    state = torch.load(ann, weights_only=True)["state_dict"]
    convs = sum(t.ndim == 4 for t in state.values())  # stem, two per block, each projection shortcut
    projections = sum(k.endswith("shortcut.0.weight") for k in state)
    relus, blocks = 1 + 2 * 3, 3  # stem + two per block; the output layer is one more IF
    out, summary = tmp_path / "snn.nir", tmp_path / "snn.json"
    argv = ["convert", str(ann), "--calib", "digits", "--steps", "4", "--threshold", "max", "--no-restructure",
            "--test-limit", "100", "--threads", "1", "--out", str(out), "--json", str(summary)]
    assert main(argv) == 0
    result = json.loads(summary.read_text())
    graph = load_graph(out)
    kinds = [graph.type_of(n) for n in graph.order]
    # An identity shortcut adds the previous block's spikes through a Scale node (what a spike is worth).
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "Input": 1, "Conv2d": convs, "IF": relus + 1, "Scale": blocks - projections, "AvgPool2d": 1, "Flatten": 1,
        "Affine": 1, "Output": 1}
    assert len(graph.nodes) == result["nodes"] == 2 + convs + relus + 1 + (blocks - projections) + 3
    x, y = load_digits(flatten=False).x_test[:100], load_digits().y_test[:100]
    pred, _, _ = simulated(out, x, steps=4)
    assert (pred == y).mean() == pytest.approx(result["test_accuracy"], abs=1.01 / len(pred))
    assert main(["convert", str(ann), "--calib", "digits", "--steps", "4", "--test-limit", "0", "--threads", "1",
                 "--out", str(tmp_path / "r.nir")]) == 0  # restructured, searched thresholds
    restructured = load_graph(tmp_path / "r.nir")
    assert restructured.metadata["spikestack"]["restructured"] and len(restructured.nodes) > len(graph.nodes)
    assert main(["convert", str(ann), "--calib", "digits", "--steps", "4", "--test-limit", "0", "--threads", "1",
                 "--tune", "64", "--out", str(tmp_path / "t.nir")]) == 0  # thresholds and biases tuned on the SNN
    assert "task-tuned on 64 images" in capsys.readouterr().out
    assert load_graph(tmp_path / "t.nir").metadata["spikestack"]["task_tuned"]


class Payload:
    """Unpickling this calls open(marker, 'w'): proof that a loader ran code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _pt_files(tmp_path) -> dict:
    marker = tmp_path / "PAYLOAD_RAN"
    files = {"evil.pt": None, "evil_raw.pt": None, "junk.pt": None, "wrong_shape.pt": None}
    torch.save({"format": "spikestack-ann/1", "arch": {}, "state_dict": Payload(marker)}, tmp_path / "evil.pt")
    (tmp_path / "evil_raw.pt").write_bytes(pickle.dumps(Payload(marker)))  # legacy, non-zip torch format
    (tmp_path / "junk.pt").write_bytes(np.random.default_rng(0).bytes(512))
    spec = ResNetSpec(in_shape=(1, 28, 28), width=2, blocks=1, stages=1)  # Fashion-MNIST's shape, not digits'
    save_ann(build_resnet(spec), spec.to_dict(), tmp_path / "wrong_shape.pt")
    (tmp_path / "empty_idx").mkdir()
    return {name: tmp_path / name for name in files}


ERRORS = {
    "unknown dataset": (["train", "s3nn", "--dataset", "mnist-ish"], "unknown dataset 'mnist-ish'"),
    "missing IDX dir": (["train", "noise-t1", "--dataset", "{tmp}/no_such_dir"], "unknown dataset"),
    "IDX dir without files": (["train", "hnsg", "--dataset", "{tmp}/empty_idx"], "missing train-images-idx3-ubyte"),
    "unknown surrogate": (["train", "s3nn", "--dataset", "digits", "--surrogate", "tanh"], "unknown surrogate 'tanh'"),
    "unknown arch": (["train", "s3nn", "--dataset", "digits", "--arch", "rnn"], "arch must be one of mlp, conv"),
    "unknown noise": (["train", "noise-t1", "--dataset", "digits", "--noise", "laplace"], "noise must be one of"),
    "eval steps 0": (["train", "noise-t1", "--dataset", "digits", "--eval-steps", "4", "0"], "steps must be an integer >= 1"),
    "keep 0": (["train", "hnsg", "--dataset", "digits", "--keep", "0"], "keep is the fraction of weights kept"),
    "keep above 1": (["train", "hnsg", "--dataset", "digits", "--keep", "1.5"], "in (0, 1]; got 1.5"),
    "hnsg steps 0": (["train", "hnsg", "--dataset", "digits", "--steps", "0"], "steps must be an integer >= 1"),
    "spide steps 0": (["train", "spide", "--dataset", "digits", "--steps", "0"], "steps must be an integer >= 1"),
    "unknown backward": (["train", "spide", "--dataset", "digits", "--backward", "bptt"], "backward must be one of"),
    "limit 0": (["train", "resnet", "--dataset", "digits", "--limit", "0"], "limit must be a positive integer"),
    "missing model": (["convert", "{tmp}/none.pt", "--calib", "digits"], "no such model file"),
    "pickled code (zip)": (["convert", "{tmp}/evil.pt", "--calib", "digits"], "refused by the weights-only loader"),
    "pickled code (raw)": (["convert", "{tmp}/evil_raw.pt", "--calib", "digits"], "weights-only"),
    "random bytes": (["convert", "{tmp}/junk.pt", "--calib", "digits"], "not a readable weights-only torch file"),
    "wrong input shape": (["convert", "{tmp}/wrong_shape.pt", "--calib", "digits"], "takes samples (1, 28, 28)"),
    "convert steps 0": (["convert", "{tmp}/wrong_shape.pt", "--calib", "digits", "--steps", "0"], "steps must be"),
    "convert tune -1": (["convert", "{tmp}/wrong_shape.pt", "--calib", "digits", "--tune", "-1"], "tune must be"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_is_one_line_exit_2_and_touches_nothing(case, tmp_path, capsys):
    files = _pt_files(tmp_path)
    before = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}
    argv, message = ERRORS[case]
    out = tmp_path / "out" / "model.nir"
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--out", str(out), "--threads", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"spikestack {argv[0]}: error: ")
    assert message in captured.err and captured.out == ""
    assert not out.exists() and not (tmp_path / "PAYLOAD_RAN").exists()
    assert {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()} == before

