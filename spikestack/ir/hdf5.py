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
has the reader process (hdf5_reader.py, a fresh interpreter started once) read the whole tree
(`read_in_child`): a reader that hangs past READ_TIMEOUT_S is killed, and one that dies (a crash in
C) is reported, each as one line, before this process touches the file. The reader answers only
"ok" or "failed": on success the caller reads the file again itself (a NIR file is small, and
reading it twice costs milliseconds), so no data crosses the process boundary.
"""

from __future__ import annotations

import h5py

from spikestack.errors import GraphFileError
from spikestack.memory import check_allocation, check_elements, memory_budget

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
        self.budget = memory_budget()  # once per file: the default reads /proc/meminfo
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
        self.total += size * dtype.itemsize
        if self.total > self.budget:  # this dataset alone, or all together: the check that says which
            check_elements(describe(where), size, dtype)
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
