"""Graphs as peers hand them over (ir/intake.py): in memory, and with a batch dimension in Input types."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from conftest import small_mlp
from spikestack.cli import main
from spikestack.errors import GraphValidationError
from spikestack.ir import lower_graph, resolve_options
from spikestack.ir.validate import load_graph
from spikestack.pipeline import run


def _with_input_type(graph: nir.NIRGraph, shape) -> nir.NIRGraph:
    graph.nodes["input"] = nir.Input(input_type={"input": np.array(shape)})
    return graph


def test_in_memory_graph_with_tensors_runs_as_its_file(tmp_path):
    """A peer exporter's graph holds torch tensors (with grad) and tuples; it runs as the file does, unmodified."""
    graph = small_mlp()
    path = tmp_path / "g.nir"
    nir.write(path, graph)
    weight = graph.nodes["fc1"].weight
    graph.nodes["fc1"].weight = torch.tensor(weight, requires_grad=True)
    graph.nodes["lif1"].tau = torch.full((3,), 0.01)
    x = (np.random.default_rng(0).random((30, 2, 4)) < 0.5).astype(np.float32) * 3
    from_memory = run(graph, x, dt=1e-3)
    from_file = run(path, x, dt=1e-3)
    np.testing.assert_array_equal(from_memory.output, from_file.output)
    assert isinstance(graph.nodes["fc1"].weight, torch.Tensor)  # the caller's object is untouched


def test_anything_else_is_refused_in_one_line():
    with pytest.raises(Exception, match="a graph is a .nir path or a nir.NIRGraph, not dict"):
        load_graph({"nodes": {}})


def test_batch_dimension_is_dropped_under_presets_whose_exporters_write_it():
    graph = _with_input_type(small_mlp(), [1, 4])
    built = load_graph(graph, preset="snntorch")
    assert built.out_shapes["input"] == (4,)
    lower_graph(built, resolve_options(preset="snntorch"))


def test_batch_dimension_other_than_one_contradicts_the_preset():
    graph = _with_input_type(small_mlp(), [3, 4])
    with pytest.raises(GraphValidationError, match=r"node 'input'.*leading dimension of 3 that its consumers do not take"):
        load_graph(graph, preset="norse")


def test_time_dimension_is_dropped_under_sinabs():
    """Sinabs' plain layers trace on (B, T, N): the file's Input type is [T, N]."""
    graph = _with_input_type(small_mlp(), [100, 4])
    assert load_graph(graph, preset="sinabs").out_shapes["input"] == (4,)


def test_batch_dimension_is_kept_without_such_a_preset():
    """Without the preset's rule a [1, 4] Input is a [1, 4] Input: it meets per-neuron parameters of shape
    (3,) as (1, 3), refused naming the node, never silently reshaped."""
    graph = _with_input_type(small_mlp(), [1, 4])
    with pytest.raises(GraphValidationError, match=r"node 'lif1': input shape \(1, 3\) does not match"):
        load_graph(graph)


def _run_small_mlp(tmp_path, capsys, preset: str) -> tuple[int, list[str]]:
    """`spikestack run` of small_mlp (tau 10 ms, r = 1) under `preset`: (exit code, stderr lines)."""
    path, x = tmp_path / "g.nir", tmp_path / "x.npy"
    nir.write(path, small_mlp())
    np.save(x, np.ones((5, 1, 4), np.float32))
    code = main(["run", str(path), "--preset", preset, "--input", str(x), "--out", str(tmp_path / "o.npz")])
    # a fresh clone's first run also says how long the compiled engine took to compile (cli.report_compile_time)
    return code, [line for line in capsys.readouterr().err.strip().splitlines() if "compiled engine" not in line]


def test_preset_note_says_what_the_file_cannot_tell(tmp_path, capsys):
    code, err = _run_small_mlp(tmp_path, capsys, "sinabs")
    assert code == 0
    assert len(err) == 1 and err[0].startswith("spikestack run: note: Sinabs' exporter writes neither the spike function")


def test_rockpool_file_written_at_another_dt_is_refused(tmp_path, capsys):
    """Rockpool writes r = tau e^(-dt/tau) / dt: an r of 1 with tau = 10 ms contradicts dt = 1 ms."""
    code, err = _run_small_mlp(tmp_path, capsys, "rockpool")
    assert code == 2 and len(err) == 1 and "node 'lif1' field 'r'" in err[0] and "not a Rockpool file" in err[0]
    assert not (tmp_path / "o.npz").exists()


def test_norse_tau_beyond_a_second_points_at_the_older_preset(tmp_path, capsys):
    """Norse 1.1 writes dt * tau: a field of 0.01 would be a 10 s neuron, so it is a Norse 1.0 file."""
    code, err = _run_small_mlp(tmp_path, capsys, "norse")
    assert code == 2 and len(err) == 1 and "node 'lif1' field 'tau'" in err[0] and "--preset norse@1.0" in err[0]
