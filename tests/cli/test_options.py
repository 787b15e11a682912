"""Options and the CLI's one error path: every mistake on the command line is one line on stderr and exit
code 2 (argparse's own errors too), a negative number is a value, and NaN, inf, zero counts and
out-of-range widths are refused by name, from the shell and from Python; profiles that would crash the
reader, Dask addresses that are not Dask, and bars on a stderr that is not a terminal."""

from __future__ import annotations

import socket
import threading
import time

import nir
import numpy as np
import pytest

from conftest import small_mlp
from spikestack.cli import main
from spikestack.errors import ChipError, OptionsError


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """main(argv) as the shell runs it: (exit code, stdout, stderr); argparse's SystemExit is a code too."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error(capsys, prog: str, *argv: str) -> str:
    """Run, expect exit 2 and exactly one 'spikestack <prog>: error: ...' line; return that line."""
    code, _, err = cli(capsys, *argv)
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and err.startswith(f"spikestack {prog}: error: "), err
    return err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 4-input graph with a (T=5, B=2, 4) spike input, and a 64-input graph for the digits dataset."""
    d = tmp_path_factory.mktemp("options")
    nir.write(d / "g.nir", small_mlp())
    nir.write(d / "g64.nir", small_mlp(n_in=64, n_out=10))
    np.save(d / "x.npy", (np.random.default_rng(0).random((5, 2, 4)) < 0.3).astype(np.float32))
    (d / "deep.yaml").write_text("[" * 20_000 + "]" * 20_000)
    (d / "big.yaml").write_text("# padding\n" * 120_000)  # 1.2 MB of comments: refused before parsing
    (d / "zero.yaml").write_text(
        "name: zero\ndescription: a chip whose cores hold nothing\nkind: snn\nestimated: true\n"
        "limits:\n  neurons_per_core: {value: 0, source: a test, kind: assumed}\nenergy: {}\nlatency: {}\n")
    return {p.stem: str(p) for p in d.iterdir()} | {"dir": d}


# --- argparse: one line, exit 2, named by the (sub-)command that refused ---------------------------------

ARGPARSE = {
    "no command": ("spikestack", [], "required"),
    "unknown command": ("spikestack", ["frob"], "invalid choice: 'frob'"),
    "unknown option": ("info", ["info", "{g}", "--bogus"], "unrecognized arguments: --bogus"),
    "missing required": ("run", ["run", "{g}", "--dt", "1e-3"], "required: --input, --out"),
    "bad choice": ("run", ["run", "{g}", "--mode", "fast", "--input", "{x}", "--out", "{dir}/o.npz"], "invalid choice"),
    "bad int": ("map", ["map", "{g}", "--weight-bits", "eight"], "--weight-bits"),
    "train: no method": ("train", ["train"], "required: METHOD"),
    "train s3nn: missing --dataset": ("train s3nn", ["train", "s3nn"], "required: --dataset"),
    "train s3nn: bad int": ("train s3nn", ["train", "s3nn", "--dataset", "digits", "--epochs", "two"], "--epochs"),
    "train s3nn: unknown option": ("train s3nn", ["train", "s3nn", "--dataset", "digits", "--bogus"], "--bogus"),
    "convert: missing --calib": ("convert", ["convert", "ann.pt"], "required: --calib"),
    "sweep: bad int": ("sweep", ["sweep", "{g}", "--dataset", "digits", "--chunk-size", "many"], "--chunk-size"),
}


@pytest.mark.parametrize("case", list(ARGPARSE))
def test_argparse_errors_are_one_line_exit_2(case, files, capsys):
    prog, argv, message = ARGPARSE[case]
    prefix = "spikestack: error: " if prog == "spikestack" else f"spikestack {prog}: error: "
    code, out, err = cli(capsys, *[a.format(**files) for a in argv])
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith(prefix), err
    assert message in err


def test_help_still_prints_and_exits_0(capsys):
    code, out, _ = cli(capsys, "deploy", "--help")
    assert code == 0 and "--progress" in out and "--dt-seconds" in out


# --- negative numbers are values; what cannot be meant is refused by name ------------------------------

@pytest.mark.parametrize("dt", ["-1e-4", "-1E-4", "-inf", "-.5e-3", "0", "nan", "inf"])
def test_dt_must_be_finite_and_positive(dt, files, capsys):
    err = one_error(capsys, "run", "run", files["g"], "--dt", dt, "--input", files["x"],
                    "--out", files["dir"] / "o.npz")
    assert "--dt" in err and "> 0" in err and "expected one argument" not in err
    assert not (files["dir"] / "o.npz").exists()


def test_dt_given_as_a_number_still_runs_and_a_negative_potential_is_a_value(files, capsys):
    out = files["dir"] / "ok.npz"
    code, stdout, err = cli(capsys, "run", files["g"], "--dt", "1e-4", "--initial-potential", "-5e-1",
                            "--input", files["x"], "--out", out)
    assert code == 0 and out.exists() and "wrote" in stdout, err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_initial_potential_must_be_finite(value, files, capsys):
    err = one_error(capsys, "run", "run", files["g"], "--dt", "1e-3", "--initial-potential", value,
                    "--input", files["x"], "--out", files["dir"] / "o.npz")
    assert "--initial-potential" in err and "finite" in err


@pytest.mark.parametrize("bits", ["0", "-1", "1000"])
def test_weight_bits_in_the_quantisers_range(bits, files, capsys):
    err = one_error(capsys, "map", "map", files["g"], "--dt", "1e-3", "--weight-bits", bits)
    assert "weight" in err and ("<= 8" in err or ">= 1" in err)


@pytest.mark.parametrize("seconds", ["0", "inf", "-1", "nan"])
def test_energy_dt_seconds_must_be_finite_and_positive(seconds, files, capsys):
    out = files["dir"] / f"energy-{seconds}"
    err = one_error(capsys, "energy", "energy", files["g"], "--dt", "1e-3", "--input", files["x"],
                    "--chip", "xylo-audio2", "--chip", "spinnaker2", f"--dt-seconds={seconds}", "--out", out)
    assert "--dt-seconds" in err and "> 0" in err
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("option, value", [("--steps", "0"), ("--samples", "0"), ("--limit", "0"), ("--seed", "-1"),
                                           ("--dt-seconds", "-1e-3")])
def test_deploy_counts_and_seconds(option, value, files, capsys):
    out = files["dir"] / "deploy-bad"
    err = one_error(capsys, "deploy", "deploy", files["g64"], "--dt", "1e-3", "--dataset", "digits", "--limit", "5",
                    "--backend", "sim", option, value, "--out", out)
    assert option in err and not out.exists()


def test_the_library_refuses_the_same_values_from_python(files, tmp_path):
    """The argparse types are an early message; the functions that consume a value check it themselves."""
    from spikestack.pipeline import deploy, energy, load_program, map_graph
    from spikestack.sweep.plan import plan_sweep

    x = np.load(files["x"])
    with pytest.raises(OptionsError, match="steps"):
        deploy(files["g64"], tmp_path / "d", dataset="digits", steps=0, limit=5, backend="sim", dt=1e-3)
    with pytest.raises(OptionsError, match="seed"):
        deploy(files["g64"], tmp_path / "d", dataset="digits", seed=-1, limit=5, backend="sim", dt=1e-3)
    with pytest.raises(OptionsError, match="dt_seconds"):
        energy(files["g"], x, ["xylo-audio2"], tmp_path / "e", dt_seconds=float("inf"), dt=1e-3)
    with pytest.raises(OptionsError, match="weight_bits"):
        map_graph(files["g"], "loihi", weight_bits=1000, dt=1e-3)
    with pytest.raises(OptionsError, match="initial_potential"):
        load_program(files["g"], dt=1e-3, initial_potential=float("nan"))
    with pytest.raises(OptionsError, match="dt_seconds"):
        plan_sweep(files["g64"], "digits", "4", "float", ["loihi"], 10, 10, 0, float("nan"), 8, {"dt": 1e-3})
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


# --- chip profiles that would crash the reader ----------------------------------------------------------

def _with_chip(files, command: str, chip: str) -> list[str]:
    common = ["--dt", "1e-3", "--chip", chip]
    return {"map": ["map", files["g"], *common],
            "energy": ["energy", files["g"], *common, "--input", files["x"], "--out", files["dir"] / "e-chip"],
            "deploy": ["deploy", files["g"], *common, "--input", files["x"], "--backend", "sim",
                       "--out", files["dir"] / "d-chip"],
            "sweep": ["sweep", files["g64"], *common, "--dataset", "digits", "--limit", "10", "--steps", "2",
                      "--mode", "float", "--out", files["dir"] / "s-chip"]}[command]


@pytest.mark.parametrize("command", ["map", "energy", "deploy", "sweep"])
@pytest.mark.parametrize("profile, message", [("deep", "nested more than"), ("zero", "limits.neurons_per_core"),
                                              ("big", "larger than 1 MB")])
def test_every_command_with_chip_refuses_a_hostile_profile(command, profile, message, files, capsys):
    err = one_error(capsys, command, *_with_chip(files, command, files[profile]))
    assert files[profile] in err and message in err
    assert not any((files["dir"] / f"{c}-chip").exists() for c in "eds")


def test_load_profile_from_python(files):
    from spikestack.energy import load_profile

    for profile in ("deep", "zero", "big"):
        with pytest.raises(ChipError, match=files[profile]):
            load_profile(files[profile])


# --- sweep --scheduler pointed at something that is not Dask ------------------------------------------

def _server(reply: bytes | None, hold_s: float = 20.0) -> socket.socket:
    """A TCP server on an ephemeral localhost port that answers every connection with `reply` (None: says
    nothing) and keeps it open `hold_s` seconds: a web server, or anything that is not a Dask scheduler."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed by the test
                return
            if reply is not None:
                conn.sendall(reply)
            threading.Timer(hold_s, conn.close).start()

    threading.Thread(target=serve, daemon=True).start()
    return server


@pytest.mark.parametrize("reply", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"\x00\xff junk " * 64, None,
                                   "closed"], ids=["http", "junk", "silent", "closed port"])
def test_sweep_scheduler_that_is_not_dask_is_one_line_in_bounded_time(reply, files, capsys):
    if reply == "closed":
        with socket.create_server(("127.0.0.1", 0)) as s:
            port = s.getsockname()[1]  # closed again: nothing listens there now
        server = None
    else:
        server = _server(reply)
        port = server.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    start = time.monotonic()
    try:
        err = one_error(capsys, "sweep", "sweep", files["g64"], "--dt", "1e-3", "--dataset", "digits", "--limit", "10",
                        "--steps", "2", "--mode", "float", "--chunk-size", "10", "--scheduler", address,
                        "--connect-timeout", "2", "--out", files["dir"] / "sweep-dask")
    finally:
        if server is not None:
            server.close()
    assert address in err and time.monotonic() - start < 15
    assert not (files["dir"] / "sweep-dask" / "sweep.json").exists()


# --- progress bars only on a terminal; bugs of ours are exit 1, not a traceback ----------------------------

def test_deploy_without_a_terminal_prints_no_bars(files, capsys):
    out = files["dir"] / "deploy-bars"
    code, stdout, err = cli(capsys, "deploy", files["g64"], "--dt", "1e-3", "--dataset", "digits", "--limit", "5",
                            "--steps", "4", "--backend", "sim", "--chip", "loihi", "--out", out)
    assert code == 0 and (out / "report.json").exists(), err
    assert "%|" not in err and "sample/s" not in err and "\r" not in err


def test_an_unexpected_exception_is_one_internal_error_line_exit_1(files, capsys, monkeypatch):
    import spikestack.pipeline as pipeline

    def broken(path):
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(pipeline, "info", broken)
    monkeypatch.delenv("SPIKESTACK_DEBUG", raising=False)
    code, _, err = cli(capsys, "info", files["g"])
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("spikestack info: internal error: RuntimeError: a bug over two lines")
    assert "SPIKESTACK_DEBUG" in err
    monkeypatch.setenv("SPIKESTACK_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["info", files["g"]])


def test_memory_error_is_one_line_exit_2(files, capsys, monkeypatch):
    import spikestack.pipeline as pipeline

    def hungry(path):
        raise MemoryError()

    monkeypatch.setattr(pipeline, "info", hungry)
    err = one_error(capsys, "info", "info", files["g"])
    assert "out of memory" in err and "--max-memory" in err
