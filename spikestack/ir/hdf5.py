"""An HDF5 tree as nested dicts, read without trusting it: links, types and sizes are checked first.

NIR writes a plain tree: groups and whole datasets of numbers or text, joined by ordinary links. A
damaged or hostile file may instead hold
- a soft link to a path that does not exist (h5py yields None for it, which nothing downstream expects);
- an external link: followed, h5py would open whatever file it names, so it is refused outright;
- a link back to a group above it (the reader would recurse forever) or one group reached twice;
- a dataset of compound, enum, reference or opaque type;
- a chunked dataset declaring 38 x 10^9 elements in a few kilobytes of file (unwritten chunks read
  as the fill value, so reading it allocates them all).
Each is refused in one line naming the place in the file before anything is read; every dataset's
bytes count against the memory budget, alone and all together.

Some damage only the HDF5 library meets: one byte changed in a file's global heap (the length of a
variable-length string) makes HDF5 2.0 loop forever inside `dataset[()]`, holding the GIL, where no
signal handler or size check can reach it (found by the fuzzer, tests/fuzz). So `read_nir` first
reads the whole tree in a forked child (`read_in_child`): a child that hangs past READ_TIMEOUT_S is
killed, and one that dies (a crash in C) is reported, each as one line, before this process touches
the file. The child sends nothing back: on success the parent reads the file again itself (a NIR
file is small, and reading it twice costs milliseconds), so no data crosses the process boundary.
"""

from __future__ import annotations

import os
import select
import signal

import h5py

from spikestack.errors import GraphFileError
from spikestack.memory import check_allocation, check_elements

# Dataset element kinds a NIR file uses: bool, signed, unsigned, float, fixed-length bytes.
# Variable-length strings (h5py's object dtype with string info) are accepted too.
DATA_KINDS = frozenset("biufS")


def describe(where: str) -> str:
    """'/node/nodes/sub/nodes/fc1/weight' -> "node 'sub.fc1' field 'weight'"; else the HDF5 path."""
    parts = where.strip("/").split("/")[1:]  # below the root group 'node'
    names = []
    while len(parts) > 2 and parts[0] == "nodes":
        names.append(parts[1])
        parts = parts[2:]
    if names and parts:
        return f"node '{'.'.join(names)}' field '{'/'.join(parts)}'"
    return f"HDF5 object '{where}'"


class _TreeReader:
    def __init__(self):
        self.total = 0  # bytes of the datasets read so far
        self.groups: set = set()  # ids of the groups entered: a second visit is a cycle or a shared group

    def item(self, group: h5py.Group, key: str, where: str):
        link = group.get(key, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise GraphFileError(f"{describe(where)}: external link to '{link.filename}:{link.path}' refused "
                                 "(a .nir file may not make the reader open other files)")
        if not isinstance(link, (h5py.HardLink, h5py.SoftLink)):
            raise GraphFileError(f"{describe(where)}: {type(link).__name__} refused (only plain and soft links are read)")
        item = group.get(key)
        if item is None:
            target = f" to '{link.path}'" if isinstance(link, h5py.SoftLink) else ""
            raise GraphFileError(f"{describe(where)}: link{target} does not resolve (dangling link)")
        return item

    def group(self, group: h5py.Group, where: str) -> dict:
        if group.id in self.groups:
            raise GraphFileError(f"{describe(where)}: group reached a second time (a link cycle or a shared group)")
        self.groups.add(group.id)
        out = {}
        for key in group:
            path = f"{where}/{key}"
            item = self.item(group, key, path)
            if isinstance(item, h5py.Group):
                out[key] = self.group(item, path)
            elif isinstance(item, h5py.Dataset):
                out[key] = self.dataset(item, path)
            else:
                raise GraphFileError(f"{describe(path)}: {type(item).__name__} is neither a group nor a dataset")
        return out

    def dataset(self, dataset: h5py.Dataset, where: str):
        dtype = dataset.dtype
        if dtype.kind not in DATA_KINDS and h5py.check_string_dtype(dtype) is None:
            raise GraphFileError(f"{describe(where)}: dataset of type {dtype} refused (NIR fields hold real numbers or text)")
        size = dataset.size or 0  # None: a null dataspace, read as h5py.Empty
        self.total += check_elements(describe(where), size, dtype)
        check_allocation(f"the datasets read up to {describe(where)}, all together", self.total)
        value = dataset[()]
        return value.decode("utf8") if isinstance(value, bytes) else value


def read_tree(file: h5py.File, key: str) -> dict:
    """The group `key` of an open file and everything below it, as nested dicts of arrays and values."""
    reader = _TreeReader()
    item = reader.item(file, key, f"/{key}")
    if not isinstance(item, h5py.Group):
        raise GraphFileError(f"/{key}: is a {type(item).__name__}, expected a group")
    return reader.group(item, f"/{key}")


READ_TIMEOUT_S = 10.0  # a valid NIR file of hundreds of MB reads in about a second


def read_in_child(path: str, timeout_s: float = READ_TIMEOUT_S) -> None:
    """Read the tree of `path` in a forked child; one-line `GraphFileError` if HDF5 hangs or crashes
    there. Errors of ours in the child are left for the parent's own read to raise."""
    done_r, done_w = os.pipe()  # the child holds the write end: end of file = the child has exited
    pid = os.fork()
    if pid == 0:  # the child: read, say nothing, exit without running the parent's cleanup
        try:
            os.close(done_r)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            with h5py.File(path, "r") as file:
                if "node" in file:
                    read_tree(file, "node")
        except BaseException:  # noqa: BLE001  (the parent's own read raises the same error, in one line)
            pass
        finally:
            os._exit(0)
    os.close(done_w)
    try:
        finished, _, _ = select.select([done_r], [], [], timeout_s)
    finally:
        os.close(done_r)
    if not finished:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if not finished:
        raise GraphFileError(f"{path}: the HDF5 library did not finish reading it in {timeout_s:g} s "
                             "(a corrupt file: HDF5 loops on some damaged heaps)")
    if os.WIFSIGNALED(status):
        raise GraphFileError(f"{path}: the HDF5 library crashed reading it (signal {os.WTERMSIG(status)}): a corrupt file")
