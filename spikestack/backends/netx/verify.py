"""Run a netx file in lava-dl's own runtime, in a side environment, and read back every layer's spikes.

lava-dl 0.6.0 pins torch < 2.4, so it never enters this environment: `lava_dl_run.py` (beside
this module, a script that imports lava-dl and never spikestack) runs in a Python that has it,
by default `.venv-lavadl` (made by `tests/peers/environments.py`), or the one `SPIKESTACK_LAVA_DL`
names. `find_lava_dl` says which, or why none; `run_lava_dl` runs the file on spikes and returns
each layer's output, (T, B, *shape) in our layout.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from spikestack.errors import BackendUnavailableError

RUNNER = Path(__file__).with_name("lava_dl_run.py")
ENV_VARIABLE = "SPIKESTACK_LAVA_DL"  # a Python with lava-dl 0.6.0 (and lava-nc) installed
SIDE_ENVIRONMENT = ".venv-lavadl"


def find_lava_dl() -> tuple[Path | None, str]:
    """(the Python to run lava-dl with, "") or (None, why there is none)."""
    named = os.environ.get(ENV_VARIABLE)
    if named:
        path = Path(named)
        return (path, "") if path.is_file() else (None, f"{ENV_VARIABLE}={named} is not a file")
    places = [Path.cwd() / SIDE_ENVIRONMENT, Path(__file__).resolve().parents[3] / SIDE_ENVIRONMENT]
    for place in places:
        python = place / "bin" / "python"
        if python.is_file():
            return python, ""
    return None, (f"no lava-dl environment: set {ENV_VARIABLE} to a Python with lava-dl 0.6.0, or make "
                  f"{SIDE_ENVIRONMENT} with `python tests/peers/environments.py`")


def run_lava_dl(path: str | os.PathLike, spikes: np.ndarray, python: Path, timeout: float = 1800.0
                ) -> tuple[list[np.ndarray], dict]:
    """Each layer's output spikes (T, B, *shape) from lava-dl's `netx.hdf5.Network` run in Lava's
    fixed_pt simulator on `spikes` (T, B, *input_shape), and the runner's summary line."""
    with tempfile.TemporaryDirectory(prefix="spikestack-netx-") as tmp:
        given, out = Path(tmp) / "input.npy", Path(tmp) / "layers.npz"
        np.save(given, np.asarray(spikes, dtype=np.int8))
        try:
            done = subprocess.run([str(python), str(RUNNER), str(path), str(given), str(out)], capture_output=True,
                                  text=True, timeout=timeout, env=_clean_environment())
        except subprocess.TimeoutExpired:
            raise BackendUnavailableError(f"lava-dl did not finish {path} within {timeout:.0f} s") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise BackendUnavailableError(f"lava-dl could not run {path}: {last}")
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        with np.load(out) as data:
            layers = [data[f"layer_{i}"] for i in range(len(summary["layers"]))]
    return layers, summary


def _clean_environment() -> dict:
    """The side Python must not see this environment's packages through PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.setdefault("PYTHONHASHSEED", "0")
    return env


__all__ = ["ENV_VARIABLE", "RUNNER", "SIDE_ENVIRONMENT", "find_lava_dl", "run_lava_dl"]
