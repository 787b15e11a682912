"""`run_lava`: run a Program on Lava's CPU simulator (`Loihi2SimCfg`), returning a `Run` like `simulate`.

Same contract as the simulator: input time-major (T, B, *input_shape), outputs (T, B, *shape) per
Output node, recordings per node ("v", "i", "s" for neurons, "out" for other ops), and `Counts` from
`ir.counts` on what was recorded. Lava has no batch dimension: the samples run one after another
through one compiled network (build.py), in a child process (child.py).

mode="float" (Lava's floating_pt models) returns what the simulator's float mode returns: Lava's
connections deliver one step late, so each output is read from the step its first input arrives
(lower.py; T + depth steps are run, the input padded with zeros). mode="loihi" (fixed_pt, the
integers of `ir.quantise`) returns Lava's own timing, which the simulator's loihi mode reproduces,
and Lava's integers (v, the u register as "i"), bit for bit. The two names are the simulator's
(`pipeline.stages.MODE_NAMES` also takes "fixed" for "loihi").

Counts (`count_run`): `ir.counts` applied to what every op received and sent, as recorded. Each op's
output comes from the traces (neurons' spikes or voltages, connections' a_out, the input itself); an op
received the sum of its sources' outputs. Float mode reads back edges one step old, as the simulator's
float mode; loihi mode counts what Lava delivers, where the synapse on a back edge is its only delay.
What each array holds (binary spikes, spike counts or graded values) is `Program.event_kinds`, as in the
simulator's executor: spiking neurons send binary spikes (counts when several per step), a sum pool of
spikes sends counts in float mode, everything else is graded. One approximation: an Affine whose Delay
op was folded into its DelayDense (lower.py) has only its delayed output on Lava, so its events sent are
counted when they arrive, d steps late.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Mapping, Sequence

import numpy as np
from tqdm import tqdm

from spikestack.backends.lava.child import run_in_child
from spikestack.backends.lava.layout import from_lava
from spikestack.backends.lava.lower import MODES, lower_program, trace_key, trace_keys
from spikestack.backends.lava.plan import LavaPlan
from spikestack.errors import BackendUnavailableError, DataError, OptionsError, UnsupportedError
from spikestack.ir.primitives import Role
from spikestack.ir.counts import OpCounter, infer_kind
from spikestack.ir.program import Program, combine_kinds
from spikestack.ir.quantise import QuantisedProgram, quantise_program
from spikestack.ir.run import Counts, Run

DEFAULT_TIMEOUT_S = 300.0  # longest wait for one sample: Lava can hang for good after a process fails


def lava_unavailable_reason() -> str | None:
    """One line saying why Lava cannot run here, or None when it can."""
    python = ".".join(str(v) for v in sys.version_info[:3])
    if sys.version_info[:2] != (3, 10):
        return f"Lava backend unavailable: lava-nc needs Python 3.10 (this is Python {python})"
    try:  # only looks: Lava itself is imported by the child process alone (shim.py)
        found = importlib.util.find_spec("lava") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        found = False
    return None if found else "Lava backend unavailable: lava-nc is not installed (pip install lava-nc==0.10.0)"


def _input(program: Program, x, mode: str) -> np.ndarray:
    if len(program.inputs) != 1:
        raise UnsupportedError(f"the Lava backend takes one Input node, this graph has {len(program.inputs)}")
    name = program.inputs[0]
    if isinstance(x, Mapping):
        if set(x) != {name}:
            raise DataError(f"expected inputs ['{name}'], got {sorted(x)}")
        x = x[name]
    arr = np.asarray(x)
    shape = program.op(name).out_shape
    if arr.ndim != 2 + len(shape) or tuple(arr.shape[2:]) != tuple(shape) or 0 in arr.shape[:2]:
        raise DataError(f"input '{name}': expected shape (T, B, {', '.join(map(str, shape))}) with T, B >= 1, got {arr.shape}")
    if mode == "loihi" and not np.all((arr >= 0) & (arr == np.floor(arr))):
        raise DataError(f"input '{name}': loihi mode takes spikes or spike counts (non-negative integers)")
    return arr


def _samples(plan: LavaPlan, x: np.ndarray) -> np.ndarray:
    """(T, B, *NIR shape) -> (B, *Lava shape, n_steps): Lava layout, zero-padded, time last."""
    v = plan.views[plan.input]
    T, B = x.shape[:2]
    data = np.zeros((plan.n_steps, B, *v.shape), dtype=np.int32 if plan.mode == "loihi" else np.float64)
    data[:T] = x.reshape(T, B, -1)[..., v.order].reshape(T, B, *v.shape)
    return np.moveaxis(data, 0, -1)


def _read(program: Program, plan: LavaPlan, traces: list[dict], name: str, key: str, T: int) -> np.ndarray:
    """The trace `key` of op `name`, aligned and in NIR layout: (T, B, *shape)."""
    op, v = program.op(name), plan.views[name]
    node = plan.nodes[v.proc]
    lava_key = key if op.is_neuron else trace_key(plan.views, plan.nodes, name)
    first = v.valid_from if plan.mode == "float" else 0
    arr = np.stack([t[(v.proc, lava_key)] for t in traces])
    arr = arr.reshape(arr.shape[:2] + tuple(v.shape))[:, first:first + T]
    out = np.moveaxis(from_lava(arr, len(v.shape), v.order, op.out_shape), 1, 0)
    if lava_key == "out" and v.bias is not None:  # the NIR op's own bias, which Lava's synapse lacks
        out = out + from_lava(v.bias, len(v.shape), v.order, op.out_shape)
    if key == "i" and node.kind == "lif" and plan.mode == "float":  # u holds gain_v * i (neurons.py)
        out = out / np.broadcast_to(op.params.gain_v, op.out_shape)
    return out


def _delay_outputs(program: Program, plan: LavaPlan, outputs: dict[str, np.ndarray]) -> None:
    """A Delay that the next DelayDense applies has no Lava output: its output is its input, later."""
    for op in program.ops:
        if op.primitive.role is Role.DELAY and plan.views[op.name].delays is not None:
            src = outputs[op.sources[0].name]
            steps = np.broadcast_to(op.params.steps, op.out_shape)
            out = np.zeros_like(src)
            for index in np.ndindex(*op.out_shape):
                d = int(steps[index])
                out[(slice(d, None), slice(None)) + index] = src[(slice(0, len(src) - d), slice(None)) + index]
            outputs[op.name] = out


def _delayed(values: np.ndarray, steps: int) -> np.ndarray:
    """values (T, ...) seen `steps` steps later, zero before."""
    out = np.zeros_like(values)
    if steps < len(values):
        out[steps:] = values[: len(values) - steps]
    return out


def count_run(program: Program, outputs: dict[str, np.ndarray], mode: str) -> Counts:
    """outputs: every op's output (T, B, *out_shape). Returns per-op, per-metric (T, B) counts."""
    x = outputs[program.inputs[0]]
    kinds = program.event_kinds({program.inputs[0]: infer_kind(x)}, pools_count=mode == "float")
    per_node = {}
    for op in program.ops:
        received = None
        if op.sources:
            parts = [_delayed(outputs[s.name], s.delay if mode == "float" else 0) for s in op.sources]
            received = np.sum(parts, axis=0) if len(parts) > 1 else parts[0]
        input_kind = combine_kinds([kinds[s.name] for s in op.sources]) if op.sources else None
        per_node[op.name] = OpCounter(op)(received, outputs[op.name], input_kind=input_kind,
                                          output_kind=kinds[op.name])
    return Counts(per_node)


def run_lava(program: Program | QuantisedProgram, x, mode: str = "float", record: Sequence[str] = (),
             progress: bool = True, *, count: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S) -> Run:
    """Run `program` on Lava for input x (T, B, *input_shape) (or {input name: x}).

    mode: "float" (floating_pt, aligned with the simulator's float mode) or "loihi" (fixed_pt, the
    integers of `ir.quantise`; a `QuantisedProgram` may be passed instead of the Program). record:
    node names whose traces to return. count: compute `Counts` from the recorded events.
    timeout_s: give up (and stop Lava) when one sample takes longer.
    """
    if mode not in MODES:  # before anything runs; "fixed" is `pipeline.stages.MODE_NAMES`'s alias, not ours
        raise OptionsError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    reason = lava_unavailable_reason()
    if reason is not None:
        raise BackendUnavailableError(reason)
    qprog = program if isinstance(program, QuantisedProgram) else None
    program = qprog.program if qprog is not None else program
    if qprog is not None and mode != "loihi":
        raise OptionsError("a QuantisedProgram runs in mode='loihi' only")
    record = (record,) if isinstance(record, str) else tuple(record)
    unknown = [r for r in record if r not in {op.name for op in program.ops}]
    if unknown:
        raise OptionsError(f"cannot record unknown node(s) {', '.join(map(repr, unknown))}")
    x = _input(program, x, mode)
    if mode == "loihi" and qprog is None:
        qprog = quantise_program(program)[0]
    plan = lower_program(program, mode, len(x), record, count, bool(np.isin(x, (0, 1)).all()), qprog)
    with tqdm(total=x.shape[1], desc=f"Lava {mode}", unit="sample", disable=not progress) as bar:
        traces = run_in_child(plan, _samples(plan, x), timeout_s, lambda b: bar.update(1))
    T = len(x)
    outputs = {name: _read(program, plan, traces, name, "out", T) for name in program.outputs}
    recordings = {}
    for name in record:
        op = program.op(name)
        keys = trace_keys(op) if op.is_neuron else {"out"}
        recordings[name] = {key: _read(program, plan, traces, name, key, T) for key in sorted(keys)}
    counts = None
    if count:
        every = {name: x if name == plan.input else None for name in plan.views}
        for op in program.ops:
            if not op.primitive.is_input and plan.views[op.name].delays is None:
                every[op.name] = _read(program, plan, traces, op.name, "out" if not op.is_neuron else
                                       ("s" if op.params.spiking else "v"), T)
        _delay_outputs(program, plan, every)
        counts = count_run(program, every, mode)
    return Run(outputs=outputs, recordings=recordings, counts=counts, backend="lava", mode=mode)
