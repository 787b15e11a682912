"""Outputs never clobber inputs, and a bad output path is one line: every command refuses an output
that resolves to one of its inputs (symlinks and hard links included) or cannot be written, before
any work starts; and every file is written atomically (no partial file, the old one kept on failure)."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import nir
import numpy as np
import pytest

from conftest import small_mlp
from spikestack.cli import main

# spikestack.outputs is imported inside the tests that use it, so the CLI tests above them run
# (and fail) against a checkout without it.


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(directory: Path) -> list[str]:
    """Temporary files of write_atomically anywhere under directory."""
    return [str(p) for p in directory.rglob(".*.tmp*")]


@pytest.fixture()
def files(tmp_path):
    """A small graph and an input for it: {'graph': g.nir, 'input': x.npy}."""
    graph, x = tmp_path / "g.nir", tmp_path / "x.npy"
    nir.write(graph, small_mlp())
    np.save(x, (np.random.default_rng(0).random((6, 2, 4)) < 0.5).astype(np.float32))
    return {"graph": graph, "input": x}


def refused(capsys, argv: list[str], option: str, *protected: Path, tmp_path: Path) -> str:
    """Run argv: exit 2, one line on stderr naming `option`, protected files unchanged, no temp file."""
    before = {p: sha(p) for p in protected}
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"spikestack {argv[0]}: error: ") and option in err, err
    assert "Traceback" not in err
    assert {p: sha(p) for p in protected} == before
    assert leftovers(tmp_path) == []
    return err


def run_argv(files, out, *extra) -> list:
    return ["run", files["graph"], "--dt", "1e-3", "--input", files["input"], "--out", out, *extra]


# --- run: the data-loss cases of the issue -----------------------------------------------------------

def test_run_stats_on_the_graph_is_refused_before_running(files, tmp_path, capsys):
    out = tmp_path / "o.npz"
    err = refused(capsys, run_argv(files, out, "--stats", files["graph"]), "--stats", files["graph"],
                  files["input"], tmp_path=tmp_path)
    assert "GRAPH" in err and str(files["graph"]) in err
    assert not out.exists()  # refused before anything ran: nothing written


def test_run_stats_on_the_input_is_refused(files, tmp_path, capsys):
    err = refused(capsys, run_argv(files, tmp_path / "o.npz", "--stats", files["input"]), "--stats",
                  files["graph"], files["input"], tmp_path=tmp_path)
    assert "--input" in err


def test_run_out_equal_to_input_is_refused(files, tmp_path, capsys):
    refused(capsys, run_argv(files, files["input"]), "--out", files["input"], tmp_path=tmp_path)


def test_run_out_equal_to_graph_is_refused(files, tmp_path, capsys):
    refused(capsys, run_argv(files, files["graph"]), "--out", files["graph"], tmp_path=tmp_path)


def test_run_out_and_stats_on_one_file_is_refused(files, tmp_path, capsys):
    out = tmp_path / "o.npz"
    err = refused(capsys, run_argv(files, out, "--stats", out), "--stats", tmp_path=tmp_path)
    assert "--out" in err and not out.exists()


def test_a_symlink_to_an_input_counts_as_the_input(files, tmp_path, capsys):
    link = tmp_path / "link.npz"
    link.symlink_to(files["graph"])
    refused(capsys, run_argv(files, link), "--out", files["graph"], tmp_path=tmp_path)
    assert link.is_symlink()


def test_a_hard_link_to_an_input_counts_as_the_input(files, tmp_path, capsys):
    link = tmp_path / "hard.json"
    os.link(files["input"], link)
    refused(capsys, run_argv(files, tmp_path / "o.npz", "--stats", link), "--stats", files["input"], tmp_path=tmp_path)


def test_run_writes_and_replaces_outputs(files, tmp_path, capsys):
    out, stats = tmp_path / "o.npz", tmp_path / "s.json"
    out.write_text("previous")
    assert main([str(a) for a in run_argv(files, out, "--stats", stats)]) == 0
    assert "output" in np.load(out) and stats.read_text().startswith("{")
    assert leftovers(tmp_path) == []


# --- bad output paths: one line each ------------------------------------------------------------------

def under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "plain").write_text("a file")
    return tmp_path / "plain" / "sub"


BAD_FILE_OUTPUTS = {
    "existing directory": (lambda t: (t / "d").mkdir() or t / "d", "is a directory"),
    "missing directory": (lambda t: t / "missing" / "o.npz", "does not exist"),
    "under a file": (lambda t: under_a_file(t) / "o.npz", "is a file, not a directory"),
}


@pytest.mark.parametrize("case", list(BAD_FILE_OUTPUTS))
@pytest.mark.parametrize("option", ["--out", "--stats"])
def test_run_bad_output_path_is_one_line(case, option, files, tmp_path, capsys):
    make, message = BAD_FILE_OUTPUTS[case]
    bad = make(tmp_path)
    argv = run_argv(files, bad) if option == "--out" else run_argv(files, tmp_path / "o.npz", "--stats", bad)
    err = refused(capsys, argv, option, files["graph"], files["input"], tmp_path=tmp_path)
    assert message in err and not (tmp_path / "o.npz").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_run_into_an_unwritable_directory_is_one_line(files, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        err = refused(capsys, run_argv(files, locked / "o.npz"), "--out", tmp_path=tmp_path)
    finally:
        locked.chmod(0o755)
    assert "not writable" in err


DIRECTORY_COMMANDS = {  # command -> argv without --out (each would run for seconds if not refused)
    "energy": lambda f: ["energy", f["graph"], "--dt", "1e-3", "--input", f["input"], "--chip", "loihi"],
    "deploy": lambda f: ["deploy", f["graph"], "--dt", "1e-3", "--input", f["input"], "--backend", "sim"],
    "demo": lambda f: ["demo"],
    "sweep": lambda f: ["sweep", f["graph"], "--dt", "1e-3", "--dataset", "digits"],
}


@pytest.mark.parametrize("command", list(DIRECTORY_COMMANDS))
@pytest.mark.parametrize("case", ["existing file", "under a file"])
def test_output_directory_that_is_a_file_is_one_line(command, case, files, tmp_path, capsys):
    bad = under_a_file(tmp_path) if case == "under a file" else tmp_path / "plain"
    if case == "existing file":
        bad.write_text("a file")
    err = refused(capsys, DIRECTORY_COMMANDS[command](files) + ["--out", bad], "--out", tmp_path / "plain",
                  files["graph"], files["input"], tmp_path=tmp_path)
    assert "is a file, not a directory" in err


def test_energy_report_would_overwrite_the_input(files, tmp_path, capsys):
    """An input inside the output directory, at a name the report writes, is refused before running."""
    out = tmp_path / "report"
    out.mkdir()
    x = out / "energy.json"  # np.load reads .npy data whatever the name
    x.write_bytes(files["input"].read_bytes())
    argv = ["energy", files["graph"], "--dt", "1e-3", "--input", x, "--chip", "loihi", "--out", out]
    err = refused(capsys, argv, "--out", x, tmp_path=tmp_path)
    assert "--input" in err and "energy.json" in err


def test_deploy_report_would_overwrite_the_graph_through_a_link(files, tmp_path, capsys):
    out = tmp_path / "report"
    (out / "energy").mkdir(parents=True)
    (out / "energy" / "energy.md").symlink_to(files["graph"])
    argv = ["deploy", files["graph"], "--dt", "1e-3", "--input", files["input"], "--backend", "sim", "--out", out]
    err = refused(capsys, argv, "--out", files["graph"], tmp_path=tmp_path)
    assert "GRAPH" in err and not (out / "report.json").exists()


def test_outputs_may_not_go_into_the_dataset_directory(files, tmp_path, capsys):
    data = tmp_path / "idx"
    data.mkdir()
    argv = ["deploy", files["graph"], "--dt", "1e-3", "--dataset", data, "--out", data / "report"]
    err = refused(capsys, argv, "--out", tmp_path=tmp_path)
    assert "--dataset" in err and not (data / "report").exists()
    argv = ["train", "s3nn", "--dataset", data, "--out", data / "model.nir", "--threads", "1"]
    assert "--dataset" in refused(capsys, argv, "--out", tmp_path=tmp_path)


# --- train and convert --------------------------------------------------------------------------------

@pytest.fixture()
def ann(tmp_path):
    from spikestack.frontend.methods import ResNetSpec, build_resnet, save_ann

    spec = ResNetSpec(in_shape=(1, 8, 8), width=2, blocks=1, stages=1)
    return save_ann(build_resnet(spec), spec.to_dict(), tmp_path / "m.pt")


@pytest.mark.parametrize("option", ["--out", "--json"])
def test_convert_onto_its_model_is_refused(option, ann, tmp_path, capsys):
    other = "--json" if option == "--out" else "--out"  # never the default path in the working directory
    argv = ["convert", ann, "--calib", "digits", "--threads", "1", option, ann, other, tmp_path / "other"]
    assert "MODEL" in refused(capsys, argv, option, ann, tmp_path=tmp_path)
    assert not (tmp_path / "other").exists()


def test_train_json_onto_out_is_refused_before_training(tmp_path, capsys):
    model = tmp_path / "model.nir"
    argv = ["train", "s3nn", "--dataset", "digits", "--threads", "1", "--out", model, "--json", model]
    err = refused(capsys, argv, "--json", tmp_path=tmp_path)
    assert "--out" in err and not model.exists()


def test_train_json_under_a_file_is_refused_before_training(tmp_path, capsys):
    argv = ["train", "s3nn", "--dataset", "digits", "--threads", "1", "--out", tmp_path / "m.nir",
            "--json", under_a_file(tmp_path) / "s.json"]
    assert "is a file, not a directory" in refused(capsys, argv, "--json", tmp_path=tmp_path)
    assert not (tmp_path / "m.nir").exists()


# --- atomic writes ------------------------------------------------------------------------------------

def test_a_writer_failing_midway_leaves_the_old_file_and_no_partial_one(tmp_path):
    from spikestack.outputs import write_atomically

    target = tmp_path / "out.json"
    target.write_text("old")

    def half(tmp: Path) -> None:
        tmp.write_text("new but not fin")
        raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        write_atomically(target, half)
    assert target.read_text() == "old" and leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, lambda tmp: (tmp.write_text("x"), (_ for _ in ()).throw(KeyboardInterrupt())))
    assert target.read_text() == "old" and leftovers(tmp_path) == []


def test_disk_full_is_one_line_naming_the_path(tmp_path):
    from spikestack.errors import OutputPathError
    from spikestack.outputs import write_atomically

    target = tmp_path / "out.png"

    def full(tmp: Path) -> None:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp.name.startswith(".out.png.")
        tmp.write_bytes(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputPathError, match="out.png: cannot write .No space left on device."):
        write_atomically(target, full)
    assert not target.exists() and leftovers(tmp_path) == []


def test_new_files_get_the_usual_permissions(tmp_path):
    from spikestack.outputs import write_atomically

    umask = os.umask(0o022)
    try:
        path = write_atomically(tmp_path / "a.txt", lambda tmp: tmp.write_text("x"))
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_run_failing_while_saving_keeps_the_previous_output(files, tmp_path, capsys, monkeypatch):
    out = tmp_path / "o.npz"
    out.write_bytes(b"previous results")

    def savez_then_fail(f, **arrays):
        f.write(b"PK\x03\x04 partial zip")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez_compressed", savez_then_fail)
    err = refused(capsys, run_argv(files, out), "o.npz", out, files["graph"], files["input"], tmp_path=tmp_path)
    assert "No space left on device" in err and out.read_bytes() == b"previous results"


def test_check_outputs_accepts_a_dataset_name_and_new_paths(tmp_path):
    from spikestack.outputs import check_outputs

    check_outputs({"--out": tmp_path / "new.nir", "--json": tmp_path / "s.json"}, {"--dataset": "digits"})
    check_outputs({"--out": tmp_path / "a" / "b"}, {}, {"--out": ["x.json", "sub/y.png"]})
    assert not (tmp_path / "a").exists()  # checking creates nothing
