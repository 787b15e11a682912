"""lava-dl judges our netx export and import (issue 20), at lengths beyond the tests'.

For each graph (tests/backends/netx/netx_graphs.py: a dense MLP, a conv net, a conv net with a sum
pool, a recurrent net, an LIF net with biases) and the demo's network trained for netx (noise-T1 on
digits, `--for netx`, its full 20 epochs): export to netx, run the file in lava-dl 0.6.0's
`netx.hdf5.Network` in Lava's fixed_pt simulator (side environment `.venv-lavadl`) and compare
every layer's spikes, every step, with our loihi mode (`pipeline.verify_netx`). Then the reverse:
SLAYER's own exports (tests/peers/side_lavadl.py) imported and run in loihi mode against lava-dl's run
of the same file. Prints one row per network.

    .venv/bin/python bench/netx_parity.py [--steps 300] [--samples 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "peers"), str(ROOT / "tests" / "backends" / "netx")]

import environments  # noqa: E402
from netx_graphs import GRAPHS, input_spikes  # noqa: E402

from spikestack.backends.netx import run_lava_dl  # noqa: E402
from spikestack.ir.quantise import quantise_program  # noqa: E402
from spikestack.pipeline import deploy_input, export_netx, import_netx, load_program, verify_netx  # noqa: E402
from spikestack.simulators import simulate  # noqa: E402


def _row(name: str, result: dict, seconds: float) -> str:
    spikes = result.get("spikes", "-")
    first = result.get("first_difference", "")
    return f"| {name} | {result['status']} {first} | {result['steps']} | {result['samples']} | {spikes} | {seconds:.1f} |"


def ours_vs_lava_dl(python: Path, steps: int, samples: int, out: Path) -> list[str]:
    from spikestack.frontend.data import load_digits
    from spikestack.frontend.methods import train_demo_model

    rows = []
    for name, make in GRAPHS.items():
        export = export_netx(make(), out / f"{name}.net")
        x = input_spikes(export.quantised.program.ops[0].out_shape, steps, samples)
        start = time.perf_counter()
        rows.append(_row(name, verify_netx(export, x, python=python), time.perf_counter() - start))
    data = load_digits(seed=0)
    trained = train_demo_model(data, seed=0, target="netx")
    export = export_netx(trained.export(out / "demo.nir"), out / "demo.net")
    x = deploy_input(export.quantised.program, None, "digits", steps, samples, 0).batch(0, samples)
    start = time.perf_counter()
    result = verify_netx(export, x, python=python)
    rows.append(_row(f"demo model (--for netx, torch T=1 accuracy {trained.history.test_accuracy:.3f})", result,
                     time.perf_counter() - start))
    return rows


def slayer_imports(python: Path, steps: int, samples: int, out: Path) -> list[str]:
    done = subprocess.run([str(python), str(ROOT / "tests" / "peers" / "side_lavadl.py"), "slayer", str(out)],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    rows = []
    for kind in ("dense", "conv"):
        with np.load(out / f"{kind}.slayer.npz") as saved:
            shape = saved["input"].shape[2:]
        x = input_spikes(shape, steps, samples, seed=3)
        start = time.perf_counter()
        theirs, _ = run_lava_dl(out / f"{kind}.net", x, python)
        import_netx(out / f"{kind}.net", out / f"{kind}.nir", shape if kind == "conv" else None)
        quantised = quantise_program(load_program(out / f"{kind}.nir"))[0]
        neurons = [op.name for op in quantised.program.neuron_ops]
        run = simulate(quantised, x, mode="loihi", record=neurons)
        same = all(np.array_equal(run.recordings[n]["s"].astype(np.int8), t) for n, t in zip(neurons, theirs))
        result = {"status": "identical" if same and len(theirs) == len(neurons) else "different", "steps": steps,
                  "samples": samples, "spikes": int(sum(int(t.sum()) for t in theirs))}
        rows.append(_row(f"SLAYER {kind} (imported)", result, time.perf_counter() - start))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    python = environments.ensure("lavadl")
    with tempfile.TemporaryDirectory() as tmp:
        print("| network | lava-dl vs loihi mode, every layer | steps | samples | spikes | seconds |")
        print("|---|---|---|---|---|---|")
        rows = ours_vs_lava_dl(python, args.steps, args.samples, Path(tmp))
        rows += slayer_imports(python, args.steps, args.samples, Path(tmp))
        print("\n".join(rows))
    return 0 if all("| identical" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
