"""`simulate`: run a Program on a batch of inputs, in float or Loihi fixed-point arithmetic.

Float mode runs the discretised dynamics of `ir.dynamics` in float32 by default (what the
PyTorch frameworks we compare against compute in; float64 on request through `dtype`). Loihi
mode quantises the Program with `ir.quantise` (unless given a `QuantisedProgram`) and runs it
bit-exactly as Lava's `fixed_pt` models would: integer states, every synapse op one step late.
Its inputs must be integers (spikes or spike counts), and its recordings are Lava's integers:
v, the current register u as "i", spikes s (divide v by the neuron's `NeuronInts.scale` for
float units).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import os
import sys

import numpy as np

from spikestack.engines import check_engine, default_engine
from spikestack.errors import DataError, OptionsError
from spikestack.ir.counts import infer_kind
from spikestack.ir.primitives import DelaySteps
from spikestack.ir.program import Program
from spikestack.ir.quantise import QuantisedProgram, quantise_program
from spikestack.ir.run import METRICS, Run
from spikestack.memory import check_allocation, element_count
from spikestack.simulators.compiled_run import run_compiled

MODES = ("float", "loihi")
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def caller_threads() -> int:
    """The threads a run may use: torch's setting where the caller imported torch (benches and
    training set it), else every core. The compiled engine itself never imports torch, so that a
    command that only simulates stays hundreds of megabytes smaller (docs/simulator.md)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else (os.cpu_count() or 1)


def _inputs(program: Program, x) -> dict[str, np.ndarray]:
    """Check the input arrays against the Program's Input nodes; name expected vs got."""
    names = program.inputs
    if not isinstance(x, Mapping):
        if len(names) != 1:
            raise DataError(f"the graph has {len(names)} inputs ({', '.join(names)}): pass a dict name -> array")
        x = {names[0]: x}
    if set(x) != set(names):
        raise DataError(f"expected inputs {sorted(names)}, got {sorted(x)}")
    data, steps = {}, None
    for name in names:
        arr = np.asarray(x[name])
        shape = program.op(name).out_shape
        expected = "(T, B, " + ", ".join(map(str, shape)) + ")"
        if arr.ndim != 2 + len(shape) or tuple(arr.shape[2:]) != tuple(shape):
            raise DataError(f"input '{name}': expected shape {expected} (time-major), got {arr.shape}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise DataError(f"input '{name}': needs at least one step and one sample, got {arr.shape}")
        if steps is not None and arr.shape[:2] != steps:
            raise DataError(f"input '{name}': (T, B) = {arr.shape[:2]} differs from the other inputs' {steps}")
        steps = arr.shape[:2]
        data[name] = arr
    return data


def _record(program: Program, record: Sequence[str]) -> tuple[str, ...]:
    names = {op.name for op in program.ops}
    record = (record,) if isinstance(record, str) else tuple(record)
    unknown = [r for r in record if r not in names]
    if unknown:
        raise OptionsError(f"cannot record unknown node(s) {', '.join(map(repr, unknown))}")
    return record


def _check_memory(program: Program, steps: int, batch: int, record: tuple[str, ...], count: bool) -> None:
    """What the run will hold, checked before it starts (8 bytes a value, the widest): outputs and
    recordings (T, B, *shape) each, counts (T, B) per op and metric, and per op its state (a few
    (B, *shape) arrays) or a Delay's ring buffer of max(steps) + 1 of them. Each fits the budget when
    the graph was lowered; their product with T and B may not."""
    total = 0
    for op in program.ops:
        n = element_count(op.out_shape)
        series = (op.name in program.outputs) + (3 if op.is_neuron else 1) * (op.name in record)
        depth = int(np.max(op.params.steps, initial=0)) + 1 if isinstance(op.params, DelaySteps) else 4
        total += 8 * (steps * batch * (n * series + len(METRICS) * count) + batch * n * depth)
    check_allocation(f"simulating {steps:,} steps x {batch:,} samples (outputs, recordings, counts and state)", total)


def _check_loihi_inputs(kinds: dict[str, str]) -> None:
    for name, kind in kinds.items():
        if kind == "graded":
            raise DataError(f"input '{name}': loihi mode takes spikes or spike counts (non-negative integers)")


def simulate(program: Program | QuantisedProgram, x: np.ndarray | Mapping[str, np.ndarray], mode: str = "float",
             record: Sequence[str] = (), count: bool = True, *, dtype=np.float32, engine: str | None = None) -> Run:
    """Run `program` on time-major input x (T, B, *input_shape), or a dict of them by Input name.

    Returns a `Run`: outputs (T, B, *shape) per Output node; recordings[node] of the recorded
    nodes ("v", "i", "s" for neurons, "out" for other ops), (T, B, *shape) each; and, if
    `count`, the `Counts` of every op (metric arrays (T, B)). `dtype` (float mode): float32 or
    float64. `engine`: "compiled" (numba kernels, the batch split over the caller's torch thread
    count) or "reference" (the torch executor, whose threads serve large products only,
    `kernels.Parallel`); both give the same spikes and counts (docs/simulator.md). None: the
    default of `spikestack.engines` (compiled, unless the CLI's --engine or SPIKESTACK_ENGINE says).
    """
    if mode not in MODES:
        raise OptionsError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    engine = default_engine() if engine is None else check_engine(engine)
    if isinstance(program, QuantisedProgram) and mode != "loihi":
        raise OptionsError("a QuantisedProgram runs in mode='loihi' only")
    qprog = program if isinstance(program, QuantisedProgram) else None
    program = qprog.program if qprog is not None else program
    data = _inputs(program, x)
    record = _record(program, record)
    _check_memory(program, *next(iter(data.values())).shape[:2], record, count)
    kinds = {name: infer_kind(arr) for name, arr in data.items()}
    if mode == "float" and np.dtype(dtype) not in FLOAT_DTYPES:
        raise OptionsError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    if mode == "loihi":
        _check_loihi_inputs(kinds)
        qprog = qprog or quantise_program(program)[0]
    if engine == "compiled":
        outputs, recordings, counts = run_compiled(program, qprog, dtype, kinds, data, record, count, caller_threads())
    else:
        from spikestack.simulators.reference_run import run_reference  # imports torch

        outputs, recordings, counts = run_reference(program, qprog, dtype, kinds, data, record, count)
    return Run(outputs=outputs, recordings=recordings, counts=counts, backend="simulator", mode=mode)
