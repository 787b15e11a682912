"""The files between run_lava and its child process: no pickle either way, and exact round trips.

The job file (plan + samples) is an .npz whose structure is JSON; the fixed-point path relies on
integer dtypes, so every array, numpy scalar and Python number must come back with its type.
No Lava needed: these only write and read files.
"""

from __future__ import annotations

import dataclasses
import json
import pickle

import nir
import numpy as np
import pytest

from lava_nets import chain, io, lif, lower_nodes, residual_hand_graph
from spikestack.backends.lava.lower import lower_program
from spikestack.backends.lava.plan import read_job, read_traces, write_job, write_traces
from spikestack.errors import DataError
from spikestack.ir.quantise import quantise_program


def assert_identical(a, b, where: str = "plan") -> None:
    """Same types all the way down (tuple stays tuple, int64 stays int64), same values."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} became {type(b).__name__}"
    if isinstance(a, (np.ndarray, np.generic)):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        np.testing.assert_array_equal(a, b, err_msg=where)  # NaN equals NaN here
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b and str(a) == str(b), where  # str: -0.0 stays -0.0


def _fixed_plan():
    """Stock and custom bit-accurate neurons: int32 weights, int64 biases and voltages, Python ints."""
    rng = np.random.default_rng(0)
    inp, _ = io([6])
    nodes = {"input": inp, "fc1": nir.Affine(weight=rng.integers(-20, 40, (5, 6)).astype(np.float32),
                                             bias=rng.integers(-3, 3, 5).astype(np.float32)),
             "lif1": lif(5, 5e-3, 30.0, v_leak=2.0), "fc2": nir.Linear(weight=rng.integers(-20, 40, (4, 5)).astype(np.float32)),
             "lif2": lif(4, 4e-3, 20.0), "output": nir.Output(output_type={"output": np.array([4])})}
    program = lower_nodes(nodes, chain(list(nodes)), dt=1e-3, initial_potential=0.25)
    return lower_program(program, "loihi", 20, record=("lif1",), count=True, qprog=quantise_program(program)[0])


@pytest.fixture()
def no_pickle(monkeypatch):
    """Any pickling or unpickling while the files are written or read fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    for name in ("dump", "dumps", "load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)


@pytest.mark.parametrize("mode", ["float", "loihi"])
def test_job_file_round_trips_the_plan_exactly_and_holds_no_pickle(tmp_path, mode, no_pickle):
    if mode == "float":  # NeuronCoefficients, relays (int64 steps), a DelayDense, float weights
        plan = lower_program(residual_hand_graph(), "float", 12, record=("sum",), count=True)
        samples = np.random.default_rng(0).random((2, 3, plan.n_steps))
    else:
        plan = _fixed_plan()
        samples = np.random.default_rng(0).integers(0, 2, (2, 6, plan.n_steps)).astype(np.int32)
    # Values a JSON round trip could bend: numpy scalars, special and tiny floats, tuples in lists.
    plan.nodes[plan.input].params["probe"] = [np.float32(0.1), np.int8(-3), np.uint16(7), float("inf"), float("nan"),
                                              -0.0, 1e-310, 2 ** 62, (1, (2.5, "x")), {"k": None}, True, np.array(5)]
    path = tmp_path / "job.npz"
    write_job(path, plan, samples)
    with np.load(path, allow_pickle=False) as npz:  # every entry loads without pickle
        assert all(not npz[key].dtype.hasobject for key in npz.files)
    got_plan, got_samples = read_job(path)
    assert_identical(samples, got_samples, "samples")
    assert_identical(plan, got_plan)


def test_an_object_array_or_unknown_class_never_enters_or_leaves_a_job(tmp_path):
    plan = lower_program(residual_hand_graph(), "float", 5)
    plan.nodes["sum"].params["bad"] = np.array([{"a": 1}], dtype=object)
    with pytest.raises(DataError, match="object array"):
        write_job(tmp_path / "job.npz", plan, np.zeros((1, 3, plan.n_steps)))
    del plan.nodes["sum"].params["bad"]
    write_job(tmp_path / "job.npz", plan, np.zeros((1, 3, plan.n_steps)))
    with np.load(tmp_path / "job.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    structure = json.loads(arrays["plan.json"].tobytes())
    structure["plan"]["__class__"] = "Popen"  # a tampered file asks for another class
    arrays["plan.json"] = np.frombuffer(json.dumps(structure).encode(), dtype=np.uint8)
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(DataError, match="unknown entry 'Popen'"):
        read_job(tmp_path / "tampered.npz")


def test_trace_file_round_trips_keys_and_dtypes(tmp_path, no_pickle):
    traces = {("fc1", "out"): np.arange(12, dtype=np.int32).reshape(4, 3), ("lif.1", "v"): np.full((4, 2), -0.5),
              ("lif.1", "s"): np.eye(4, dtype=np.float64)}
    write_traces(tmp_path / "sample-0.npz", traces)
    assert_identical(dict(sorted(traces.items())), read_traces(tmp_path / "sample-0.npz"), "traces")
