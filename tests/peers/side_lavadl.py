"""lava-dl 0.6.0's side of the netx tier: netx files written by SLAYER's own exporter.

Runs in `.venv-lavadl` (see environments.py) and never imports spikestack:

    side_lavadl.py slayer OUTDIR      # OUTDIR/dense.net, OUTDIR/conv.net, and OUTDIR/<kind>.slayer.npz
    side_lavadl.py check OUTDIR       # runs both files in lava_dl_run.py (Lava fixed_pt) on the saved
                                      # input; prints rates and whether SLAYER's forward agrees (exit 1 if not)

Each network is a list of `lava.lib.dl.slayer.block.cuba` blocks (CPU, torch.manual_seed(0)),
exported the way lava-dl's tutorials do: one group per block under 'layer', filled by the block's
own `export_hdf5`. A forward pass comes first: SLAYER fills in a neuron's and a Flatten's shape
lazily, from the first input it sees, and the exporter writes those shapes.

- dense: Dense(34 -> 50) -> Dense(50 -> 10)                                  input (34,)
- conv:  Conv(2 -> 4, 3x3, padding 1) -> Flatten -> Dense(400 -> 10)         input (2, 10, 10)

Weights are drawn N(mean, std) so that, after SLAYER's 8-bit quantisation (steps of 2/64 in
[-4, 3.97], i.e. even integers in [-256, 254] once exported), the hidden layers fire a few to ~30%
of the steps on p = 0.2 random input; rates are printed on stderr. SLAYER's own forward output of
every block on that input is saved too, (T, B, *shape) in our layout (channel-first), int8, as
`layer_<i>` in <kind>.slayer.npz (i numbered as netx's `Network.layers`: Flatten blocks skipped),
with the input as `input`: SLAYER shifts every block's output by one
step (`delay_shift=True`), the same one-step synaptic delay that Lava's Dense/Conv have, so it is
directly comparable with `lava_dl_run.py`'s output (up to SLAYER's float emulation of the fixed-point
neuron).
"""

from __future__ import annotations

import sys

sys.modules["spikestack"] = None  # the peer side must never see our package

import contextlib  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import h5py  # noqa: E402
import torch  # noqa: E402

with contextlib.redirect_stdout(sys.stderr):  # lava-dl prints a "Prophesee" warning on import
    from lava.lib.dl import slayer  # noqa: E402

torch.set_num_threads(1)

T, B, P = 100, 2, 0.2  # steps, samples, input spike probability
# Loihi CUBA: threshold 1.25 -> vThMant 80; current_decay 0.25 -> iDecay 1024; voltage_decay 0.03 -> vDecay 123
NEURON = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03, "requires_grad": False}


def _fill(block, mean: float, std: float) -> None:
    """N(mean, std) weights; SLAYER's default init is zero-mean and too weak to make layers fire."""
    with torch.no_grad():
        w = block.synapse.weight
        w.copy_(mean + std * torch.randn(w.shape))


def dense() -> tuple[list, tuple]:
    blocks = [slayer.block.cuba.Dense(NEURON, 34, 50), slayer.block.cuba.Dense(NEURON, 50, 10)]
    _fill(blocks[0], 0.005, 0.08)
    _fill(blocks[1], 0.02, 0.15)
    return blocks, (34,)


def conv() -> tuple[list, tuple]:
    blocks = [slayer.block.cuba.Conv(NEURON, 2, 4, 3, padding=1),
              slayer.block.cuba.Flatten(),
              slayer.block.cuba.Dense(NEURON, 400, 10)]
    _fill(blocks[0], 0.01, 0.1)
    _fill(blocks[2], 0.002, 0.04)
    return blocks, (2, 10, 10)


KINDS = {"dense": dense, "conv": conv}


def _forward(blocks: list, x: torch.Tensor) -> list[torch.Tensor]:
    """SLAYER's forward on (B, *shape, T); every block's output, (B, *shape, T)."""
    outs = []
    with torch.no_grad():
        for block in blocks:
            x = block(x)
            outs.append(x)
    return outs


def _time_major(y: torch.Tensor) -> np.ndarray:
    """SLAYER's (B, *shape, T) -> our (T, B, *shape)."""
    return np.ascontiguousarray(np.moveaxis(y.numpy(), -1, 0)).astype(np.int8)


def make(kind: str, outdir: Path) -> None:
    torch.manual_seed(0)
    blocks, shape = KINDS[kind]()
    x = (torch.rand(B, *shape, T) < P).float()  # SLAYER's layout: (N, C[, H, W], T)
    outs = _forward(blocks, x)  # also sets the lazy shapes the exporter needs
    path = outdir / f"{kind}.net"
    with h5py.File(path, "w") as h:
        layer = h.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(f"{i}"))
    # numbered as netx numbers its blocks (`Network.layers`): a Flatten makes none
    kept = [y for block, y in zip(blocks, outs) if not isinstance(block, slayer.block.cuba.Flatten)]
    arrays = {f"layer_{i}": _time_major(y) for i, y in enumerate(kept)}
    np.savez(outdir / f"{kind}.slayer.npz", input=_time_major(x), **arrays)
    print(f"{kind}: {path}")
    with h5py.File(path, "r") as h:
        for key in sorted(h["layer"].keys(), key=int):
            g = h["layer"][key]
            items = {name: (g[name][()].tolist() if g[name].size < 8 else f"{g[name].dtype}{list(g[name].shape)}")
                     for name in ("type", "shape", "weight", "bias", "kernelSize", "padding") if name in g}
            neuron = {name: np.asarray(g["neuron"][name][()]).tolist() for name in g["neuron"]} if "neuron" in g else {}
            print(f"  layer {key}: {items} {neuron}")
    for key, arr in arrays.items():
        print(f"{kind} slayer {key}: fires {arr.mean():.3f} of neuron-steps", file=sys.stderr)


def check(outdir: Path) -> int:
    """Run each OUTDIR/<kind>.net through lava_dl_run.py on its saved input; rates, and SLAYER's agreement."""
    runner = Path(__file__).resolve().parents[2] / "spikestack" / "backends" / "netx" / "lava_dl_run.py"
    bad = 0
    for kind in KINDS:
        ref = np.load(outdir / f"{kind}.slayer.npz")
        np.save(outdir / f"{kind}.input.npy", ref["input"])
        paths = [outdir / f"{kind}.net", outdir / f"{kind}.input.npy", outdir / f"{kind}.lava.npz"]
        done = subprocess.run([sys.executable, str(runner), *map(str, paths)], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{kind}: lava_dl_run failed: {done.stderr.strip().splitlines()[-1:]}")
            bad += 1
            continue
        print(f"{kind}: {done.stdout.strip()}")
        got = np.load(outdir / f"{kind}.lava.npz")
        for i, name in enumerate(got["types"]):
            same = np.array_equal(got[f"layer_{i}"], ref[f"layer_{i}"])
            bad += not same
            print(f"  layer {i} {name}: Lava fires {got[f'layer_{i}'].mean():.3f} of neuron-steps; "
                  f"{'identical to' if same else 'DIFFERS from'} SLAYER's forward")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "slayer":
        outdir = Path(argv[1])
        outdir.mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            make(kind, outdir)
        return 0
    if len(argv) == 2 and argv[0] == "check":
        return check(Path(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
