"""`LavaPlan`, the Lava network in plain data, and the files that carry it to the child process and
the traces back.

The plan (lower.py writes it, build.py instantiates it) is made of dataclasses, dicts, tuples,
numbers, strings and numpy arrays; a ProgramNeuron's float coefficients are the ir's
`NeuronCoefficients`. The job file is one `.npz` without pickles: every array (the samples
included) is an entry of its own, with its dtype kept exactly (the fixed-point path relies on
integer dtypes), and the structure is JSON in an entry `plan.json` that refers to the arrays by key.
Only the dataclasses in `_CLASSES` can come back out of a job file, so reading one runs no code.
The traces of each sample come back the same way (`write_traces`), announced by a JSON message.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikestack.errors import DataError
from spikestack.ir.program import NeuronCoefficients
from spikestack.ir.shapes import Shape

JOB_FORMAT = "spikestack-lava-job/1"
_STRUCTURE = "plan.json"  # the npz entry holding the JSON (as UTF-8 bytes)


@dataclass(frozen=True)
class View:
    """A Program op's output on the Lava side: which port sends it, in which layout, from when."""

    proc: str  # Lava process that sends it
    port: str  # "s_out" (sources, neurons) or "a_out" (connections)
    shape: Shape  # Lava shape (connections reshape the port when theirs differs)
    order: np.ndarray  # NIR flat index of each Lava element
    valid_from: int  # the Lava step that carries the op's step-0 value
    graded: bool  # values other than 0/1
    bias: np.ndarray | None = None  # a NIR bias (Lava layout) that the receiving neuron adds
    delays: np.ndarray | None = None  # a Delay op's steps per element, for the next DelayDense to apply


@dataclass
class LavaNode:
    name: str
    kind: str  # "source" | "dense" | "sparse" | "delay_dense" | "delay_sparse" | "relay" | "conv" | "lif" | "neuron"
    params: dict
    inputs: list[View] = field(default_factory=list)
    record: set[str] = field(default_factory=set)  # per-step traces to keep: "s", "v", "i", "out"
    note: str = ""  # for a ProgramNeuron: why Lava's stock LIF would not compute the same


@dataclass
class LavaPlan:
    mode: str
    nodes: dict[str, LavaNode]
    views: dict[str, View]  # per Program op
    input: str
    outputs: tuple[str, ...]
    n_steps: int  # steps to run per sample
    # Float mode: steps of delay added to align the inputs of a node, {node: {source: steps}} (align.py)
    alignment: dict[str, dict[str, int]] = field(default_factory=dict)


_CLASSES = {cls.__name__: cls for cls in (View, LavaNode, LavaPlan, NeuronCoefficients)}


class _Encoder:
    """Python structure -> JSON-able structure, moving every array into `arrays`."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _array(self, value: np.ndarray, tag: str) -> dict:
        if value.dtype.hasobject:  # np.savez would pickle it
            raise DataError(f"the Lava job cannot carry an object array ({value.dtype})")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = value
        return {tag: key}

    def __call__(self, value):
        if value is None or isinstance(value, (bool, str)):
            return value
        if type(value) in (int, float):
            return value  # JSON writes Python floats with repr: they come back exactly
        if isinstance(value, np.generic):  # a numpy scalar keeps its dtype as a 0-d array
            return self._array(np.asarray(value), "__scalar__")
        if isinstance(value, np.ndarray):
            return self._array(value, "__array__")
        if dataclasses.is_dataclass(value) and type(value).__name__ in _CLASSES:
            fields = {f.name: self(getattr(value, f.name)) for f in dataclasses.fields(value)}
            return {"__class__": type(value).__name__, "fields": fields}
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise DataError(f"the Lava job needs string keys, got {sorted(map(repr, value))[:3]}")
            return {"__dict__": {k: self(v) for k, v in value.items()}}
        if isinstance(value, (tuple, list, set)):
            kind = {tuple: "__tuple__", list: "__list__"}.get(type(value), "__set__")
            items = sorted(value) if kind == "__set__" else value
            return {kind: [self(v) for v in items]}
        raise DataError(f"the Lava job cannot carry a {type(value).__name__}")


def _decode(value, arrays):
    if not isinstance(value, dict):
        return value  # None, bool, int, float, str
    if "__class__" in value:
        tag, inner = value["__class__"], value.get("fields")
    else:
        ((tag, inner),) = value.items()
    if tag == "__array__":
        return arrays[inner]
    if tag == "__scalar__":
        return arrays[inner][()]
    if tag == "__dict__":
        return {k: _decode(v, arrays) for k, v in inner.items()}
    if tag in ("__tuple__", "__list__", "__set__"):
        items = [_decode(v, arrays) for v in inner]
        return {"__tuple__": tuple, "__list__": list, "__set__": set}[tag](items)
    if tag in _CLASSES and isinstance(inner, dict):
        return _CLASSES[tag](**{k: _decode(v, arrays) for k, v in inner.items()})
    raise DataError(f"not a Lava job: unknown entry {tag!r}")


def write_job(path: Path, plan: LavaPlan, samples: np.ndarray) -> None:
    """Write (plan, samples) to `path`, an .npz file with no pickled entry."""
    encoder = _Encoder()
    structure = {"format": JOB_FORMAT, "plan": encoder(plan), "samples": encoder(np.asarray(samples))}
    text = json.dumps(structure, allow_nan=True)  # NaN/Infinity may sit in float parameters
    arrays = dict(encoder.arrays, **{_STRUCTURE: np.frombuffer(text.encode(), dtype=np.uint8)})
    with open(path, "wb") as file:  # an open file: np.savez would append ".npz" to a bare name
        np.savez(file, **arrays)


def read_job(path: Path) -> tuple[LavaPlan, np.ndarray]:
    """(plan, samples) from a job file written by `write_job`; never unpickles anything."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    structure = json.loads(arrays.pop(_STRUCTURE).tobytes().decode())
    if structure.get("format") != JOB_FORMAT:
        raise DataError(f"{path}: not a Lava job file ({structure.get('format')!r})")
    return _decode(structure["plan"], arrays), _decode(structure["samples"], arrays)


def write_traces(path: Path, traces: dict[tuple[str, str], np.ndarray]) -> None:
    """One sample's traces, {(Lava process, trace key): array}, as an .npz without pickles: the
    child writes it and sends only its path (a JSON message) to the parent."""
    keys = sorted(traces)
    index = np.frombuffer(json.dumps([list(k) for k in keys]).encode(), dtype=np.uint8)
    with open(path, "wb") as file:
        np.savez(file, index=index, **{f"t{i}": traces[k] for i, k in enumerate(keys)})


def read_traces(path: Path) -> dict[tuple[str, str], np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        keys = json.loads(npz["index"].tobytes().decode())
        return {(proc, key): npz[f"t{i}"] for i, (proc, key) in enumerate(keys)}
