"""Byte-identical outputs (issue 18): run `run`, `energy`, `deploy`, `sweep` and `demo` through the
command line on the NIR paper's graphs and the demo network, hash every file they write, and
compare the hashes with a saved manifest. A refactor that claims "behaviour unchanged" runs

    .venv/bin/python bench/identical_outputs.py --save before.json    # before the change
    .venv/bin/python bench/identical_outputs.py --check before.json   # after it

`--check` prints each differing file (for text files the first differing lines, for .npz the
arrays) and exits 1, or prints "identical: N files". The commands run as `python -c` subprocesses
of this interpreter and environment, so PYTHONPATH picks the code (`cd /tmp &&
PYTHONPATH=/tmp/ref python .../identical_outputs.py ...` runs a pristine worktree); they run in the
output tree with relative paths, so the tree's location reaches no output but sweep.json's
meta "graph" (normalised below). Inputs (the graphs, seeded random spikes) are written into the
tree and hashed too. Stdout and stderr of every command are outputs (logs/). The manifest maps
each relative path to the sha256 of the file after the normalisations in VOLATILE, the only fields
that differed between two runs of the same code.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Callable

import numpy as np

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "nir-paper"
CLI = "import sys; from spikestack.cli import main; sys.exit(main())"
TEXT_SUFFIXES = (".json", ".md", ".csv", ".txt", ".html", ".stdout", ".stderr")


def _substitute(pattern: str, replacement: str) -> Callable[[bytes, str], bytes]:
    """Replace `pattern` (`{root}`: the tree's real path) by `replacement` in a UTF-8 file."""
    def normalise(blob: bytes, root: str) -> bytes:
        regex = pattern.replace("{root}", re.escape(root))
        return re.sub(regex, replacement, blob.decode("utf-8")).encode("utf-8")
    return normalise


@dataclass(frozen=True)
class Volatile:
    files: str  # glob over paths relative to the tree
    field: str
    why: str
    normalise: Callable[[bytes, str], bytes]


# Found by running the pristine code twice into two trees and comparing every file's raw sha256:
# these fields differed, nothing else did. Not volatile, hashed as written: the .npz files (numpy
# 1.26's savez stamps every zip member 1980-01-01, not the clock), the demo's trained model.nir
# (HDF5, no timestamps), the PNG plots, report.html/.json/.md, and every other log.
VOLATILE = (
    Volatile("sweep/sweep.json", 'meta "run_s", "wall_s"', "wall-clock seconds of the sweep",
             _substitute(r'("(?:run_s|wall_s)": )-?[0-9.e+-]+', r'\1"<seconds>"')),
    Volatile("sweep/sweep.json", 'meta "graph"', "the sweep records the graph's absolute path (for Dask "
             "workers): the tree's own location is cut, leaving the path relative to it",
             _substitute(r'("graph": "){root}/', r"\1")),
    Volatile("logs/sweep.stdout", '"N tasks ran in X s (Y s in all)"', "wall-clock seconds of the sweep",
             _substitute(r"(tasks ran in )[0-9.]+ s \([0-9.]+ s in all\)", r"\1<seconds>")),
)


@dataclass(frozen=True)
class Step:
    name: str  # logs/<name>.stdout and .stderr
    argv: tuple[str, ...]


GRAPHS = {  # name: file, options (the presets tests/fuzz/fuzz_harness.py uses), input shape, recorded node
    "lif": ("lif_norse.nir", ("--preset", "norse@1.0"), (1,), "1"),
    # snnTorch's delayed reset has no Loihi form: the immediate reset (an explicit option) lets loihi run too
    "braille": ("braille_noDelay_bias_zero.nir", ("--preset", "snntorch", "--reset", "zero",
                                                  "--reset-timing", "immediate"), (12,), "lif1.lif"),
    "cnn": ("cnn_sinabs.nir", ("--preset", "sinabs"), (2, 34, 34), "12"),
}
CHIP_OPTIONS = ("--chip", "loihi", "--chip", "speck", "--dt-seconds", "1e-3")


def write_inputs(root: Path) -> None:
    """The fixture graphs and seeded inputs: 2 samples, 30 (cnn: 20) steps of Bernoulli spikes."""
    (root / "inputs").mkdir(parents=True)
    for name, (graph, _, shape, _) in GRAPHS.items():
        shutil.copyfile(FIXTURES / graph, root / "inputs" / graph)
        rng = np.random.default_rng(18)
        steps, rate = (20, 0.05) if name == "cnn" else (30, 0.3)
        np.save(root / "inputs" / f"{name}.npy", (rng.random((steps, 2, *shape)) < rate).astype(np.float32))


def steps() -> list[Step]:
    plan = []
    for name, (graph, options, _, node) in GRAPHS.items():
        graph_path, x = f"inputs/{graph}", f"inputs/{name}.npy"
        for mode in ("float", "loihi"):
            plan.append(Step(f"run_{name}_{mode}", ("run", graph_path, *options, "--input", x, "--mode", mode,
                                                   "--record", node, "--out", f"run/{name}_{mode}.npz",
                                                   "--stats", f"run/{name}_{mode}.json")))
        plan.append(Step(f"energy_{name}", ("energy", graph_path, *options, "--input", x, *CHIP_OPTIONS,
                                            "--out", f"energy/{name}")))
    plan += [
        Step("demo", ("demo", "--out", "demo")),  # trains, exports demo/model.nir, deploys it (Lava: 3 samples)
        Step("deploy_cnn", ("deploy", "inputs/cnn_sinabs.nir", "--preset", "sinabs", "--input", "inputs/cnn.npy",
                            "--out", "deploy/cnn")),
        Step("deploy_digits", ("deploy", "demo/model.nir", "--dataset", "digits", "--steps", "8",
                               *CHIP_OPTIONS, "--out", "deploy/digits")),
        Step("sweep", ("sweep", "demo/model.nir", "--dataset", "digits", "--steps", "4,8", "--mode", "float,loihi",
                       "--chip", "loihi", "--chip", "spinnaker2", "--limit", "100", "--chunk-size", "50",
                       "--dt-seconds", "1e-3", "--out", "sweep")),
    ]
    return plan


def run_all(root: Path) -> None:
    where = subprocess.run([sys.executable, "-c", "import spikestack; print(spikestack.__file__)"],
                           cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    print(f"code: {where}; outputs: {root}", file=sys.stderr)
    write_inputs(root)
    (root / "logs").mkdir()
    (root / "run").mkdir()  # `run` writes files into an existing directory only
    for step in steps():
        start = time.perf_counter()
        argv = [sys.executable, "-c", CLI, *step.argv, *(("--no-progress",) if step.argv[0] != "energy" else ())]
        done = subprocess.run(argv, cwd=root, capture_output=True)
        (root / "logs" / f"{step.name}.stdout").write_bytes(done.stdout)
        (root / "logs" / f"{step.name}.stderr").write_bytes(done.stderr)
        print(f"  {step.name}: exit {done.returncode}, {time.perf_counter() - start:.1f} s", file=sys.stderr)
        if done.returncode != 0:  # later steps read the demo's model: stop at the first failure
            sys.exit(f"spikestack {' '.join(step.argv)} failed (exit {done.returncode}):\n"
                     f"{done.stderr.decode(errors='replace')[-2000:]}")


def normalised(path: Path, root: Path) -> bytes:
    relative, blob = path.relative_to(root).as_posix(), path.read_bytes()
    for volatile in VOLATILE:
        if fnmatch(relative, volatile.files):
            blob = volatile.normalise(blob, os.path.realpath(root))
    return blob


def manifest(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): hashlib.sha256(normalised(p, root)).hexdigest() for p in files}


def describe_difference(relative: str, old_root: Path, new_root: Path) -> list[str]:
    """The first differing lines of a text file, the differing arrays of an .npz, else nothing."""
    old, new = old_root / relative, new_root / relative
    if not old.is_file():
        return [f"    (no saved copy under {old_root})"]
    if relative.endswith(".npz"):
        with np.load(old) as a, np.load(new) as b:
            names = sorted(set(a.files) | set(b.files))
            return [f"    array {n!r} differs" for n in names
                    if n not in a.files or n not in b.files or a[n].tobytes() != b[n].tobytes()
                    or a[n].dtype != b[n].dtype or a[n].shape != b[n].shape]
    if not relative.endswith(TEXT_SUFFIXES):
        return []
    lines = difflib.unified_diff(normalised(old, old_root).decode("utf-8", "replace").splitlines(),
                                 normalised(new, new_root).decode("utf-8", "replace").splitlines(),
                                 "before", "after", n=1, lineterm="")
    return ["    " + line for line in list(lines)[:12]]


def check(saved_file: Path, root: Path) -> int:
    saved, current = json.loads(saved_file.read_text()), manifest(root)
    saved_root = saved_file.with_suffix("")
    differing = 0
    for relative in sorted(set(saved) | set(current)):
        if relative not in current:
            print(f"missing: {relative}")
        elif relative not in saved:
            print(f"new: {relative}")
        elif saved[relative] == current[relative]:
            continue
        else:
            print(f"differs: {relative}", *describe_difference(relative, saved_root, root), sep="\n")
        differing += 1
    if differing:
        print(f"{differing} of {len(set(saved) | set(current))} files differ; this run's outputs: {root}")
        return 1
    print(f"identical: {len(current)} files")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--save", type=Path, help="write the manifest here; outputs in FILE without .json")
    action.add_argument("--check", type=Path, help="compare with this manifest (its outputs beside it, if kept)")
    parser.add_argument("--out", type=Path, help="output tree (default: --save's FILE without .json; "
                                                 "for --check a temporary one, kept when files differ)")
    args = parser.parse_args()
    if args.check and not args.check.is_file():
        parser.error(f"--check {args.check}: no such manifest")
    root = args.out or (args.save.with_suffix("") if args.save else Path(tempfile.mkdtemp(prefix="identical-")))
    if root.exists() and any(root.iterdir()):
        parser.error(f"{root}: not empty; stale files would be hashed (remove it or give --out)")
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run_all(root.resolve())
    print(f"ran {len(steps())} commands in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.save:
        hashes = manifest(root)
        args.save.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
        print(f"saved: {len(hashes)} files -> {args.save}; outputs in {root}")
        return 0
    status = check(args.check, root)
    if status == 0 and not args.out:
        shutil.rmtree(root)
    return status


if __name__ == "__main__":
    sys.exit(main())
