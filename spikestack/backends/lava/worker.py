"""The child process of child.py: `python -m spikestack.backends.lava.worker JOB FD PARENT`.

Loads (plan, samples) from the job file JOB (plan.py: .npz and JSON, nothing unpickled), runs them
(build.py) and sends its messages on the pipe FD as JSON: ["sample", index, path of its traces' .npz]
per sample, then ["done"], or ["error", one line]. A module of its own, which nothing imports, so
that `-m` runs it once and it can check for Lava before importing it.

PARENT is the pid of the process that started it. If that process dies without stopping this one
(a SIGKILL cannot be caught), a watch thread notices within WATCH_S, removes the run's directory and
ends this process group: this process and every process Lava forked from it.
"""

from __future__ import annotations

import json
import multiprocessing.util
import os
import signal
import sys
import threading
import time
import warnings
from multiprocessing.connection import Connection
from pathlib import Path

from spikestack.backends.lava.child import MP_TEMP_FILE, STOP_GRACE_S, remove_run_dir
from spikestack.backends.lava.plan import read_job

WATCH_S = 0.2


def watch_parent(parent: int, run_dir: Path) -> None:
    """Start a daemon thread that, once `parent` is gone (this process is handed to init or a
    subreaper, so getppid() changes), removes run_dir and ends this process group. SIGTERM first, as
    child.py does: multiprocessing's resource tracker ignores it and unlinks Lava's shared memory once
    the others are gone. Not PR_SET_PDEATHSIG: it would not reach the processes Lava forks."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_S)
        remove_run_dir(run_dir)
        os.killpg(0, signal.SIGTERM)  # 0: our own group, of which start_new_session made us the leader
        time.sleep(STOP_GRACE_S)  # reached only if this process outlived its SIGTERM
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def main(argv: list[str]) -> int:
    job, fd, parent = argv
    watch_parent(int(parent), Path(job).parent)  # before Lava, which takes seconds to import
    # multiprocessing's temporary directory, made now so that whoever ends this group can remove it
    # (Lava's shared-memory manager puts its socket there; a killed process leaves it).
    (Path(job).parent / MP_TEMP_FILE).write_text(multiprocessing.util.get_temp_dir())
    warnings.simplefilter("ignore")  # Lava's and torch's import-time warnings would only fill the log
    conn = Connection(int(fd), readable=False)

    def send(message: list) -> None:  # bytes, not Connection.send, which pickles
        conn.send_bytes(json.dumps(message).encode())

    try:
        from spikestack.backends.lava import shim  # imports Lava, if it can

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
