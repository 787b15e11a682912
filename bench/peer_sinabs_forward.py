"""Sinabs 3.1.3's own forward pass of a NIR file, timed on request: the peer of bench/sim_scaling.py --part cnn.

Runs in `.venv-sinabs` (tests/peers/environments.py makes it) and never imports spikestack (the name
is poisoned), nor `samna` (Sinabs' dependency stub pip-installs from an outside index on import).
It loads the graph (`sinabs.from_nir(nir.read(FILE), batch_size=B)`, as Sinabs' NIR tutorial does)
and the time-major input (T, B, ...) once, writes the output of one forward pass, time-major, to
OUT.npy, and prints `ready`. Then for every line read on stdin it resets the model's states, runs one
forward pass on the torch threads the line names (THREADS, default 2, if it names none) and prints
its wall seconds; it exits at the end of stdin. Only the forward pass is timed: the input is already
in Sinabs' (B*T, ...) layout, a tensor, and the states are reset before.

    .venv-sinabs/bin/python bench/peer_sinabs_forward.py FILE.nir IN.npy OUT.npy [THREADS]
"""

from __future__ import annotations

import sys

sys.modules["spikestack"] = None  # the peer side must never see our package
sys.modules["samna"] = None

import contextlib  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import nir  # noqa: E402
import sinabs  # noqa: E402
import torch  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    nir_file, input_file, out_file = argv[:3]
    threads = int(argv[3]) if len(argv) == 4 else 2
    torch.set_num_threads(threads)
    answer = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # whatever the libraries print stays off the protocol
        x = np.load(input_file).astype(np.float32)
        steps, batch = x.shape[:2]
        model = sinabs.from_nir(nir.read(nir_file), batch_size=batch)
        model.eval()
        # (T, B, ...) -> Sinabs' (B*T, ...) batch-major, once
        squeezed = torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))).flatten(0, 1)

        def forward() -> torch.Tensor:  # from reset states: the caller resets, outside the timing
            with torch.no_grad():
                output = model(squeezed)
            return output[0] if isinstance(output, tuple) else output  # nirtorch's (output, state)

        sinabs.reset_states(model)
        y = forward()
        y = y.reshape(batch, steps, *y.shape[1:]).numpy()
        np.save(out_file, np.ascontiguousarray(np.swapaxes(y, 0, 1)))
    print("ready", file=answer, flush=True)
    for line in sys.stdin:
        torch.set_num_threads(int(line) if line.strip() else threads)
        with contextlib.redirect_stdout(sys.stderr):
            sinabs.reset_states(model)
            start = time.perf_counter()
            forward()
            seconds = time.perf_counter() - start
        print(f"{seconds:.9f}", file=answer, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
