"""The peers' side environments: the libraries whose own runtimes judge our presets (issue 16).

Five virtual environments next to `.venv`, made by this script (idempotent, pinned, ~10 s warm):

- `.venv-peers`: snnTorch 1.0.0, Norse 1.1.0 and Rockpool 3.1.0 (none pins against us);
- `.venv-sinabs`: Sinabs 3.1.3, which pins `nir <= 1.0.4`, so it gets nir 1.0.4 (and nirtorch 2.0.2,
  the newest that takes nir 1.0.4) of its own;
- `.venv-lavadl`: Intel's lava-dl 0.6.0 (SLAYER and netx) on `.venv`'s lava-nc 0.10.0, for the
  netx backend's bit-exact judge (`spikestack/backends/netx/lava_dl_run.py`, `side_lavadl.py`).
  lava-dl's metadata pins an older torch/lava-nc and more; `--no-deps` keeps ours, and its two
  imports `.venv` lacks, cv2 (opencv-python-headless) and ninja, are pinned here.
- `.venv-sanafe`: SANA-FE 2.2.9 (GPL-3.0, never imported by spikestack), the architecture-level
  energy/latency oracle that `bench/sanafe_run.py` drives (the runner uses `.venv`'s numpy).
- `.venv-neurobench`: NeuroBench 2.3.0 alone, on `.venv`'s torch and snnTorch 1.0.0: the judge of
  `spikestack.report.neurobench` (`side_neurobench.py`, `test_neurobench.py`).

All are layered on `.venv`: a `.pth` file appends `.venv`'s site-packages *after* their own, so
torch (4 GB with its CUDA libraries) is not downloaded again, while every pinned package installed
here (nir 1.0.4 in `.venv-sinabs`) shadows `.venv`'s copy. Packages are installed `--no-deps` from
the explicit lists below, so nothing in `.venv` is upgraded and no version is left to the resolver.
The peer scripts that run here never import `spikestack` (they poison the name), nor `samna`
(Sinabs' dependency, a stub that pip-installs from an outside index on first import; BRIEF §9).

    .venv/bin/python tests/peers/environments.py          # make or check all; prints their pythons
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / ".venv"

# name -> {distribution: version}; installed --no-deps, in this order. pbr is Sinabs' build helper.
ENVIRONMENTS: dict[str, dict[str, str]] = {
    "peers": {"snntorch": "1.0.0", "norse": "1.1.0", "rockpool": "3.1.0"},
    # nirtorch 2.6 (in .venv) needs nir >= 1.0.6: 2.0.2 is the newest that takes nir 1.0.4, and what
    # a plain `pip install sinabs==3.1.3` resolves to.
    "sinabs": {"nir": "1.0.4", "nirtorch": "2.0.2", "pbr": "7.0.3", "sinabs": "3.1.3"},
    # lava-dl imports cv2 and ninja (slayer's CUDA-extension loader) at import time; its other
    # requirements (torch, lava-nc, h5py, numpy, scipy, ...) are `.venv`'s own. Its wheel also puts a
    # top-level `tests` package (its own) into .venv-lavadl's site-packages: never `import tests` there.
    "lavadl": {"lava-dl": "0.6.0", "opencv-python-headless": "4.10.0.84", "ninja": "1.13.2"},
    # SANA-FE: a compiled wheel (cp310) whose import needs nothing beyond the standard library;
    # its optional extras (pandas for sanafe.data, matplotlib for sanafe.viz) are not used. Its wheel
    # also drops top-level src/, tests/, scripts/, docs/ and plugins/ folders (its C++ source and
    # repo files) into .venv-sanafe's site-packages: never `import tests` or `scripts` there.
    "sanafe": {"sanafe": "2.2.9"},
    # NeuroBench: its metric and benchmark modules import only torch, snntorch, numpy and tqdm, all
    # `.venv`'s; its other requirements (torchaudio, tonic, numba, ...) serve datasets and
    # preprocessors that the metrics test never imports.
    "neurobench": {"neurobench": "2.3.0"},
}
STAMP = ".spikestack-peers"


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def base_python() -> Path:
    """The interpreter `.venv` was made from (its `home`), so both sides run the same Python."""
    cfg = (BASE / "pyvenv.cfg").read_text()
    home = next(line.split("=", 1)[1].strip() for line in cfg.splitlines() if line.startswith("home"))
    version = next(line.split("=", 1)[1].strip() for line in cfg.splitlines()
                   if line.split("=", 1)[0].strip() in ("version", "version_info"))
    major_minor = ".".join(version.split(".")[:2])
    for name in (f"python{major_minor}", "python3", "python"):
        if (Path(home) / name).exists():
            return Path(home) / name
    raise RuntimeError(f"no Python found in {home} (from {BASE / 'pyvenv.cfg'})")


def ensure(name: str) -> Path:
    """Make (or check) `.venv-<name>`; returns its python. Raises RuntimeError with pip's last lines."""
    pins = ENVIRONMENTS[name]
    venv = ROOT / f".venv-{name}"
    python = venv / "bin" / "python"
    want = json.dumps({"pins": pins, "base": str(site_packages(BASE))}, sort_keys=True)
    stamp = venv / STAMP
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return python
    if not python.exists():
        subprocess.run([str(base_python()), "-m", "venv", str(venv)], check=True)
    layer = site_packages(venv) / "zz_spikestack_base.pth"  # zz: processed after the env's own .pth files
    layer.write_text(f"import site; site.addsitedir({str(site_packages(BASE))!r})\n")
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                           *(f"{k}=={v}" for k, v in pins.items())], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = [line for line in done.stderr.splitlines() if "is ignored: it is neither" not in line][-5:]
        raise RuntimeError(f".venv-{name}: pip install failed: " + " | ".join(tail))
    check = ("import importlib.metadata as m, sys; pins = %r; "
             "bad = {k: m.version(k) for k in pins if m.version(k) != pins[k]}; sys.exit(str(bad) if bad else 0)" % pins)
    done = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f".venv-{name}: wrong versions after install: {done.stderr.strip()[-300:]}")
    stamp.write_text(want)
    return python


def main() -> int:
    for name in ENVIRONMENTS:
        print(f"{name}: {ensure(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
