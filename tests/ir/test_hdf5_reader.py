"""The HDF5 reader process (ir/hdf5_reader.py): a hang or a crash there is one line here, the reader
is replaced after either, and it never outlives this process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import GRAPHS
from spikestack.errors import GraphFileError
from spikestack.ir.hdf5_reader import READER, read_in_child
from spikestack.ir.io import read_nir


@pytest.fixture
def heap_file(fixtures_dir, tmp_path) -> Path:
    """braille with one byte of its global heap changed: HDF5 2.0 loops forever reading node/edges
    (tests/fuzz/test_fuzz_findings.py::test_info_on_a_corrupt_string_heap_ends)."""
    blob = bytearray(GRAPHS["braille"].read_bytes())
    assert blob[2280:2294] == (6).to_bytes(8, "little") + b"Output"
    blob[2281] = 5
    path = tmp_path / "heap.nir"
    path.write_bytes(bytes(blob))
    return path


def ended(pid: int) -> bool:
    """No such process, or a zombie nobody here will reap (a grandchild whose parent has exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_ended(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not ended(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return ended(pid)


def test_a_reader_stuck_on_a_hanging_file_is_killed_and_the_next_read_works(heap_file):
    good = str(GRAPHS["braille"])
    read_in_child(good)
    stuck = READER.pid
    with pytest.raises(GraphFileError, match="did not finish reading it in 1 s"):
        read_in_child(str(heap_file), timeout_s=1)
    assert READER.pid is None and not Path(f"/proc/{stuck}").exists()  # killed and reaped: no zombie
    read_in_child(good)
    assert READER.pid not in (None, stuck)
    assert "output" in read_nir(good).nodes


def test_a_crash_is_one_line_and_a_reader_killed_between_reads_is_replaced(heap_file):
    good = str(GRAPHS["lif_norse"])
    read_in_child(good)
    threading.Timer(0.3, os.kill, (READER.pid, signal.SIGSEGV)).start()  # during the endless read
    with pytest.raises(GraphFileError, match=r"crashed reading it \(signal 11\): a corrupt file"):
        read_in_child(str(heap_file), timeout_s=30)
    read_in_child(good)
    killed = READER.pid
    os.kill(killed, signal.SIGKILL)  # from outside, while it waits: the next read starts another
    assert wait_ended(killed, 10)
    read_in_child(good)
    assert READER.pid != killed and not Path(f"/proc/{killed}").exists()
    pid = READER.pid
    os.kill(pid, signal.SIGINT)  # Ctrl-C in the terminal reaches the reader too: it ignores it
    read_in_child(good)
    assert READER.pid == pid


# A parent that ignores SIGINT reads argv[1], prints its reader's pid, then exits (argv[3] "exit"),
# or reads argv[2] (endless) inside a StopSignals block (the CLI's), where SIGTERM raises Terminated.
# It skips spikestack/ir/__init__.py as the reader does (hdf5_reader._BOOT): a quicker start.
PARENT = """
import signal, sys, types
signal.signal(signal.SIGINT, signal.SIG_IGN)
import spikestack
sys.modules["spikestack.ir"] = ir = types.ModuleType("spikestack.ir")
ir.__path__ = [spikestack.__path__[0] + "/ir"]
from spikestack.ir.hdf5_reader import READER, read_in_child
from spikestack.signals import StopSignals
read_in_child(sys.argv[1])
print(READER.pid, flush=True)
if sys.argv[3] != "exit":
    with StopSignals():
        read_in_child(sys.argv[2], timeout_s=float(sys.argv[3]))
"""


@pytest.mark.parametrize("end", ["exit", "SIGTERM", "SIGKILL"])
def test_the_reader_ends_with_its_parent(heap_file, end):
    """Exit: the reader sees its stdin end. SIGTERM mid-read: the parent kills it. SIGKILL mid-read:
    its own limit (2 x 1 s + 1 s) ends it."""
    timeout = {"exit": "exit", "SIGTERM": "60", "SIGKILL": "1"}[end]
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(GRAPHS["lif_norse"]), str(heap_file), timeout],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        reader = int(parent.stdout.readline())
        if end != "exit":
            time.sleep(0.5)  # into the endless read
            parent.send_signal(getattr(signal, end))
        parent.wait(timeout=60)
        assert end != "exit" or parent.returncode == 0, parent.stderr.read()
        assert wait_ended(reader, 20), f"reader {reader} still running after its parent ended ({end})"
    finally:
        parent.kill()
        parent.wait()
