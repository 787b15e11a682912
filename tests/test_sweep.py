"""Dataset sweeps on Dask: the same table in process and on worker processes, a killed worker
loses nothing, and a bad request is one SpikestackError before any task is sent."""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
from pathlib import Path

import pytest

from spikestack.errors import BackendUnavailableError, ChipError, DataError, OptionsError, SpikestackError
from spikestack.cli.sweep import add_sweep_arguments, run_sweep_command
from spikestack.sweep import job, pareto_front, sweep

# Digits, 60 test samples in chunks of 5: 2 step counts x 2 modes x 12 chunks = 48 tasks of ~20 ms,
# enough for a worker to die with work in flight, small enough for a shared 2-core machine.
SMALL = dict(dataset="digits", steps=(4, 8), modes=("float", "loihi"), chips=("loihi", "spinnaker2"),
             chunk_size=5, limit=60, calibration_samples=32, progress=False, echo=lambda line: None)


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> str:
    from spikestack.frontend.methods import train_demo_model

    path = tmp_path_factory.mktemp("sweep") / "digits.nir"
    return str(train_demo_model("digits", epochs=2).export(path))


@pytest.fixture(scope="module")
def reference(graph, tmp_path_factory):
    """The small sweep in this process: what every scheduler must reproduce."""
    return sweep(graph, out_dir=tmp_path_factory.mktemp("none"), **SMALL)


def test_table_and_files(reference):
    assert [(r["steps"], r["mode"], r["chip"]) for r in reference.rows] == [
        (t, m, c) for t in (4, 8) for m in ("float", "loihi") for c in ("loihi", "spinnaker2")]
    for row in reference.rows:
        assert row["samples"] == 60 and 0.3 < row["accuracy"] <= 1.0  # chance is 0.1
        assert row["energy_per_inference_j"] > 0 and row["synaptic_events_per_inference"] > 0
    loihi = [r for r in reference.rows if r["chip"] == "loihi"]
    assert all(r["latency_per_inference_s"] > 0 for r in loihi)
    # twice the steps: about twice the synaptic events (rate coding) and a longer latency
    assert loihi[2]["synaptic_events_per_inference"] > 1.5 * loihi[0]["synaptic_events_per_inference"]
    assert loihi[2]["latency_per_inference_s"] > loihi[0]["latency_per_inference_s"]
    config = reference.configurations[1]  # T=4, loihi: headroom from the calibration run, counts per node
    assert config["mode"] == "loihi" and config["headroom_bits"] and all(b >= 2 for b in config["headroom_bits"].values())
    assert all(isinstance(v, int) for metrics in config["counts"].values() for v in metrics.values())
    files = reference.files
    assert json.loads(Path(files["json"]).read_text())["rows"] == reference.rows
    with open(files["csv"], newline="") as f:
        assert [(int(r["steps"]), r["mode"], r["chip"]) for r in csv.DictReader(f)] == [
            (r["steps"], r["mode"], r["chip"]) for r in reference.rows]
    assert Path(files["accuracy_energy"]).stat().st_size > 0 and Path(files["latency_steps"]).stat().st_size > 0


def test_command_spells_the_presets_of_ir():
    from spikestack.ir import PRESETS
    from spikestack.cli.arguments import PRESETS as SPELT_OUT  # kept light for the CLI: must not drift

    assert SPELT_OUT == tuple(PRESETS)


def test_command_spells_the_stats_formats_of_the_pipeline():
    from spikestack.cli.arguments import STATS_FORMATS as SPELT_OUT  # kept light for the CLI: must not drift
    from spikestack.pipeline.stages import STATS_FORMATS

    assert SPELT_OUT == STATS_FORMATS


def test_pareto_front():
    points = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.7), (3.0, 0.7), (4.0, 0.9), (0.5, 0.2)]
    assert pareto_front(points) == [(0.5, 0.2), (1.0, 0.5), (2.0, 0.7), (4.0, 0.9)]


def test_loihi_table_does_not_depend_on_chunking(graph, reference, tmp_path):
    """Integer arithmetic, one seed per sample and exact sums: chunks of 60 give chunks of 5's table."""
    whole = sweep(graph, out_dir=tmp_path, **{**SMALL, "modes": ("loihi",), "chunk_size": 60})
    assert whole.rows == [r for r in reference.rows if r["mode"] == "loihi"]


@pytest.fixture(scope="module")
def local():
    """One 2-worker LocalCluster for the module, started and closed by the code that
    `scheduler='local'` runs (a cluster start and the workers' first imports cost seconds each)."""
    from spikestack.sweep.schedule import open_client

    lines: list[str] = []
    with open_client("local", 2, 10.0, lines.append) as client:
        yield client, lines


def test_local_cluster_gives_the_same_table(graph, reference, local, tmp_path):
    client, lines = local
    assert lines[0].startswith("local cluster: 2 worker processes") and lines[1].startswith("dashboard: ")
    pids = client.run(os.getpid)
    assert len(set(pids.values()) | {os.getpid()}) == 3  # separate processes
    result = sweep(graph, out_dir=tmp_path, scheduler=client.scheduler.address, **SMALL)
    assert json.dumps(result.rows) == json.dumps(reference.rows)  # bit for bit, floats included
    assert result.configurations == reference.configurations


def test_killed_worker_loses_nothing(graph, reference, local, tmp_path):
    client, _ = local
    pids = client.run(os.getpid)  # worker address -> pid
    killed: list[tuple[int, int, int, tuple]] = []  # (pid, tasks done, of total, its tasks in flight)

    def kill_busy_worker(done: int, total: int) -> None:
        if killed:
            return
        in_flight = sorted((a, keys) for a, keys in client.processing().items() if keys)
        if in_flight:  # a worker with tasks in flight: they, and its queue, must move elsewhere
            address, keys = in_flight[0]
            os.kill(pids[address], signal.SIGKILL)
            killed.append((pids[address], done, total, tuple(keys)))

    result = sweep(graph, out_dir=tmp_path, scheduler=client.scheduler.address, on_progress=kill_busy_worker, **SMALL)
    assert killed and killed[0][1] < killed[0][2] - 10, killed  # killed early, most work still to do
    assert json.dumps(result.rows) == json.dumps(reference.rows)
    story = client.cluster.scheduler.story
    runs = {key: [t[2] for t in story(key)].count("processing") for key in killed[0][3]}
    assert max(runs.values()) >= 2, runs  # what the dead worker held was run again elsewhere
    client.wait_for_workers(2, timeout=60)  # the nanny started a fresh worker process
    assert killed[0][0] not in client.run(os.getpid).values()


def _bad_profile(tmp_path: Path) -> str:
    """loihi.yaml with 16 neurons per core on a 2-core chip: the 256 hidden neurons do not fit."""
    from spikestack.energy.profile import PROFILE_DIR

    text = (PROFILE_DIR / "loihi.yaml").read_text().replace("name: loihi", "name: tiny")
    text = text.replace("{value: 128,", "{value: 2,").replace("{value: 1024,", "{value: 16,")
    (tmp_path / "tiny.yaml").write_text(text)
    return str(tmp_path / "tiny.yaml")


BAD = {  # name -> (overrides of SMALL, expected error)
    "unknown chip": (dict(chips=("loihi", "no-such-chip")), ChipError),
    "does not fit": (dict(chips=("loihi", "TINY")), ChipError),
    "unreachable scheduler": (dict(scheduler="tcp://127.0.0.1:1", connect_timeout=1.0), BackendUnavailableError),
    "missing dataset": (dict(dataset="/nonexistent/fashion"), DataError),
    "bad steps": (dict(steps="8,x"), OptionsError),
    "bad scheduler": (dict(scheduler="my-cluster"), OptionsError),
}


def _request(case: str, tmp_path: Path) -> dict:
    overrides, _ = BAD[case]
    chips = tuple(_bad_profile(tmp_path) if c == "TINY" else c for c in overrides.get("chips", SMALL["chips"]))
    return {**SMALL, "modes": ("float",), **overrides, "chips": chips}


@pytest.fixture
def no_tasks(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a task was sent")

    monkeypatch.setattr(job, "run_tasks", refuse)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_request_is_one_error_before_any_task(case, graph, tmp_path, no_tasks):
    with pytest.raises(BAD[case][1]) as err:
        sweep(graph, out_dir=tmp_path / "out", **_request(case, tmp_path))
    assert "\n" not in str(err.value) and str(err.value)
    assert not (tmp_path / "out").exists()


def test_missing_graph_is_one_error(tmp_path, no_tasks):
    with pytest.raises(SpikestackError) as err:
        sweep(tmp_path / "missing.nir", out_dir=tmp_path / "out", **SMALL)
    assert "missing.nir" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_request_from_the_command(case, graph, tmp_path, no_tasks):
    request = _request(case, tmp_path)
    argv = [graph, "--dataset", request["dataset"], "--steps", str(request["steps"]).strip("()").replace(" ", ""),
            "--mode", "float", "--limit", "60", "--scheduler", request.get("scheduler", "none"),
            "--connect-timeout", "1", "--out", str(tmp_path / "out")]
    argv += [arg for chip in request["chips"] for arg in ("--chip", chip)]
    parser = argparse.ArgumentParser()
    add_sweep_arguments(parser)
    with pytest.raises(SpikestackError) as err:
        run_sweep_command(parser.parse_args(argv))
    assert isinstance(err.value, BAD[case][1]) and "\n" not in str(err.value)
