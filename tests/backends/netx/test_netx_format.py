"""The netx export and import without lava-dl: what is written, what round-trips, what is refused.
(test_netx_lava_dl.py runs the files in lava-dl itself.)"""

from __future__ import annotations

import subprocess
import sys

import h5py
import nir
import numpy as np
import pytest

from spikestack.errors import UnsupportedError
from spikestack.ir.io import write_nir
from spikestack.ir.quantise import quantise_program
from spikestack.pipeline import export_netx, import_netx, load_program
from netx_graphs import GRAPHS, METADATA


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spikestack", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_import_gives_back_the_exported_integers(tmp_path, name):
    """export -> import -> quantise: every weight, decay, threshold and bias is the file's integer."""
    export = export_netx(GRAPHS[name](), tmp_path / "model.net")
    import_netx(tmp_path / "model.net", tmp_path / "back.nir")
    back = quantise_program(load_program(tmp_path / "back.nir"))[0]
    ours = export.quantised
    neurons = [layer.node for layer in export.layers if layer.neuron is not None]
    assert len(neurons) == len(back.neurons)
    for mine, theirs in zip(neurons, back.neurons):
        a, b = ours.neurons[mine], back.neurons[theirs]
        for field in ("du", "dv", "vth"):
            assert np.unique(getattr(a, field)).tolist() == np.unique(getattr(b, field)).tolist(), (mine, field)
        assert np.array_equal(np.broadcast_to(a.bias_mant << a.bias_exp, b.bias_mant.shape),
                              b.bias_mant << b.bias_exp), mine
    for layer in export.layers:
        if layer.weight is not None:
            match = [s for s in back.synapses.values() if s.weight.shape == layer.weight.shape
                     and np.array_equal(s.weight, layer.weight)]
            assert match, f"{layer.node}: weights not found back"


def test_file_layout_is_what_netx_reads(tmp_path):
    export_netx(GRAPHS["conv_net"](), tmp_path / "conv.net")
    with h5py.File(tmp_path / "conv.net") as f:
        types = [f[f"layer/{i}/type"][0].decode() for i in range(len(f["layer"]))]
        assert types == ["input", "conv", "conv", "flatten", "dense"]
        assert f["layer/0/shape"][()].tolist() == [2, 10, 10]  # channel first; netx reverses it
        conv = f["layer/2"]
        assert conv["weight"].shape == (8, 4, 3, 3) and conv["stride"][()].tolist() == [2, 2]
        assert conv["neuron/type"][0].decode() == "CUBA" and conv["neuron/iDecay"][()] == 1024
        assert conv["neuron/vDecay"][()] == 512 and np.issubdtype(conv["weight"].dtype, np.integer)


def _write(tmp_path, nodes, edges, metadata=None) -> str:
    path = tmp_path / "g.nir"
    write_nir(nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata or METADATA, type_check=False), path)
    return path


def _if(shape):
    return nir.IF(r=np.ones(shape), v_threshold=np.ones(shape), v_reset=np.zeros(shape))


def test_subtractive_reset_is_refused_naming_the_node(tmp_path):
    graph = _write(tmp_path, {"input": nir.Input(np.array([4])), "fc": nir.Affine(np.ones((3, 4)), np.zeros(3)),
                              "if1": _if(3), "output": nir.Output(np.array([3]))},
                   [("input", "fc"), ("fc", "if1"), ("if1", "output")],
                   {"spikestack": {"dt": 1.0, "reset": "subtract"}})
    done = _cli("export", graph, "--to", "netx", "--out", tmp_path / "m.net")
    assert done.returncode == 2 and not (tmp_path / "m.net").exists()
    assert len(done.stderr.strip().splitlines()) == 1 and "'if1'" in done.stderr and "subtractive" in done.stderr


def _pool_graph(tmp_path, into_conv: bool) -> str:
    """conv -> IF -> 2x2 SumPool2d -> (conv ->) IF."""
    rng = np.random.default_rng(0)
    nodes = {"input": nir.Input(np.array([1, 8, 8])),
             "conv1": nir.Conv2d((8, 8), rng.normal(size=(2, 1, 3, 3)), 1, 1, 1, 1, np.zeros(2)), "if1": _if((2, 8, 8)),
             "pool": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])), "if2": _if((2, 4, 4)),
             "output": nir.Output(np.array([2, 4, 4]))}
    chain = ["input", "conv1", "if1", "pool", "if2", "output"]
    if into_conv:
        nodes["conv2"] = nir.Conv2d((4, 4), rng.normal(size=(2, 2, 3, 3)), 1, 1, 1, 1, np.zeros(2))
        chain.insert(4, "conv2")
    return _write(tmp_path, nodes, list(zip(chain[:-1], chain[1:])))


def test_pooling_into_a_synapse_is_refused(tmp_path):
    done = _cli("export", _pool_graph(tmp_path, into_conv=True), "--to", "netx", "--out", tmp_path / "m.net")
    assert done.returncode == 2 and not (tmp_path / "m.net").exists()
    assert len(done.stderr.strip().splitlines()) == 1 and "'pool'" in done.stderr and "pool" in done.stderr


def test_pool_into_a_neuron_is_a_grouped_conv(tmp_path):
    export = export_netx(_pool_graph(tmp_path, into_conv=False), tmp_path / "m.net")
    pool = export.layers[2]
    assert pool.kind == "conv" and pool.groups == 2 and pool.stride == (2, 2) and pool.weight.shape == (2, 1, 2, 2)
    assert len(np.unique(pool.weight)) == 1  # one integer: the pool's 1 at the neuron's scale


def test_oversized_layer_is_refused(tmp_path):
    """1.44 M neurons in one layer: more than a Loihi 2 chip's 128 cores x 8192 (energy/profiles/loihi2.yaml)."""
    nodes = {"input": nir.Input(np.array([1, 300, 300])),
             "conv": nir.Conv2d((300, 300), np.ones((16, 1, 3, 3)), 1, 1, 1, 1, np.zeros(16)), "if1": _if((16, 300, 300)),
             "output": nir.Output(np.array([16, 300, 300]))}
    graph = _write(tmp_path, nodes, [("input", "conv"), ("conv", "if1"), ("if1", "output")])
    done = _cli("export", graph, "--to", "netx", "--out", tmp_path / "m.net")
    assert done.returncode == 2 and not (tmp_path / "m.net").exists()
    assert len(done.stderr.strip().splitlines()) == 1 and "loihi2" in done.stderr and "if1" in done.stderr


@pytest.mark.parametrize("change, words", [
    ({"initial_potential": 0.5}, "initial potential"), ({"threshold": ">="}, ">="), ({"fixed_point": "loihi"}, "netx")])
def test_other_options_netx_lacks_are_refused(tmp_path, change, words):
    graph = _write(tmp_path, {"input": nir.Input(np.array([4])), "fc": nir.Affine(np.ones((3, 4)), np.zeros(3)),
                              "if1": _if(3), "output": nir.Output(np.array([3]))},
                   [("input", "fc"), ("fc", "if1"), ("if1", "output")],
                   {"spikestack": {"dt": 1.0, "reset": "zero"}})
    flags = {"initial_potential": "--initial-potential", "threshold": "--threshold", "fixed_point": "--fixed-point"}
    key, value = next(iter(change.items()))
    done = _cli("export", graph, "--to", "netx", "--out", tmp_path / "m.net", flags[key], value)
    assert done.returncode == 2 and not (tmp_path / "m.net").exists() and words in done.stderr


def test_a_non_spiking_readout_is_refused(tmp_path):
    nodes = {"input": nir.Input(np.array([4])), "fc": nir.Affine(np.ones((3, 4)), np.zeros(3)),
             "li": nir.LI(tau=np.ones(3) * 5, r=np.ones(3), v_leak=np.zeros(3)), "output": nir.Output(np.array([3]))}
    graph = _write(tmp_path, nodes, [("input", "fc"), ("fc", "li"), ("li", "output")])
    with pytest.raises(UnsupportedError, match="'li'.*non-spiking"):
        export_netx(graph, None)


def test_import_refuses_what_it_cannot_run(tmp_path):
    export_netx(GRAPHS["dense_mlp"](), tmp_path / "m.net")
    with h5py.File(tmp_path / "m.net", "a") as f:
        f["layer/1"].create_dataset("delay", data=np.zeros(50))
    done = _cli("import", tmp_path / "m.net", "--out", tmp_path / "m.nir")
    assert done.returncode == 2 and "layer 1" in done.stderr and "delay" in done.stderr
    assert not (tmp_path / "m.nir").exists()
    (tmp_path / "junk.net").write_bytes(b"not hdf5 at all")
    done = _cli("import", tmp_path / "junk.net", "--out", tmp_path / "j.nir")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "not an HDF5 file" in done.stderr


def test_import_refuses_to_overwrite_its_input(tmp_path):
    export_netx(GRAPHS["dense_mlp"](), tmp_path / "m.net")
    before = (tmp_path / "m.net").read_bytes()
    done = _cli("import", tmp_path / "m.net", "--out", tmp_path / "m.net")
    assert done.returncode == 2 and (tmp_path / "m.net").read_bytes() == before
