"""The child process of child.py: `python -m spikestack.backends.lava.worker JOB FD`.

Loads (plan, samples) from the job file JOB (plan.py: .npz and JSON, nothing unpickled), runs them
(build.py) and sends its messages on the pipe FD as JSON: ["sample", index, path of its traces' .npz]
per sample, then ["done"], or ["error", one line]. A module of its own, which nothing imports, so
that `-m` runs it once and it can check for Lava before importing it.
"""

from __future__ import annotations

import json
import sys
import warnings
from multiprocessing.connection import Connection
from pathlib import Path

from spikestack.backends.lava import shim
from spikestack.backends.lava.plan import read_job


def main(argv: list[str]) -> int:
    job, fd = argv
    warnings.simplefilter("ignore")  # Lava's and torch's import-time warnings would only fill the log
    conn = Connection(int(fd), readable=False)

    def send(message: list) -> None:  # bytes, not Connection.send, which pickles
        conn.send_bytes(json.dumps(message).encode())

    try:
        if not shim.HAS_LAVA:
            send(["error", f"lava-nc cannot be imported ({shim.LAVA_IMPORT_ERROR})"])
            return 1
        from spikestack.backends.lava.build import run_samples  # Lava's processes: only once it imports

        plan, samples = read_job(Path(job))
        finished = run_samples(plan, samples, Path(job).parent, send)
        if finished:
            send(["done"])
        return 0 if finished else 1
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
