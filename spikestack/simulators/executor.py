"""The time-step loop shared by both arithmetics: fan-in, delays, recording and counting.

Ops whose values depend only on the graph inputs (no neuron, no Delay, no back edge upstream)
run ahead over a block of steps in one call, so the first layer's synapses see one large
matrix instead of many small ones; every other op runs step by step in Program order. Counting
and storing happen once per block too, on (steps, B, ...) arrays: at small batches the per-call
overhead of counting step by step cost more than the simulation itself.

Float: a source reached through a back edge (`Source.delay == 1`) is read as it was in the
previous step. Before the first step every node holds its response to no input (zero spikes,
an Affine's bias), as snnTorch's recurrent layers start (nirtorch starts from zeros instead;
they differ only for biased back edges).

Loihi: every synapse op delivers one step late, as Lava's Dense does, starting with its
response to no input. That delay is the one a recurrent loop needs (Lava's Dense loops work
this way), so back edges add none: synapse ops deliver at the start of a step and take in
their input at its end, after every other op has run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from spikestack.errors import UnsupportedError
from spikestack.ir.counts import OpCounter
from spikestack.ir.program import Op, Program, combine_kinds
from spikestack.ir.run import METRICS, Counts

BLOCK_ELEMENTS = 1 << 24  # values per op held for one block of run-ahead steps (64 MiB float32)


@dataclass
class Arithmetic:
    """What differs between the float and the Loihi runs."""

    kernel: Callable[[Op], Callable]  # op -> callable(tensor (N, *in_shape)) -> tensor
    to_tensor: Callable[[np.ndarray], torch.Tensor]  # a block of input data -> tensor
    dtype: torch.dtype
    delay_synapses: bool  # Loihi: synapse ops deliver at t + 1
    pools_count: bool  # float: a SumPool of spike counts is a spike count


def _fan_in(values: list[torch.Tensor]) -> torch.Tensor:
    """Several edges into one node are summed (NIR); one edge costs no copy."""
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def _store(into: dict[str, np.ndarray], key: str, steps: int, t0: int, value: torch.Tensor) -> None:
    """Write value (steps of a block, B, ...) into a (T, B, ...) array made on first use."""
    if key not in into:
        into[key] = np.zeros((steps, *value.shape[1:]), dtype=value.numpy().dtype)
    into[key][t0:t0 + value.shape[0]] = value.numpy()


class Executor:
    def __init__(self, program: Program, arithmetic: Arithmetic, input_kinds: dict[str, str],
                 record: tuple[str, ...], count: bool):
        self.program, self.ar, self.record, self.count = program, arithmetic, record, count
        self.ops = program.ops
        self.kernels = {op.name: arithmetic.kernel(op) for op in self.ops}
        ahead: set[str] = set()
        for op in self.ops:  # Program order: forward sources come first
            if op.primitive.is_input or (not op.primitive.stateful and op.sources
                                      and all(s.delay == 0 and s.name in ahead for s in op.sources)):
                ahead.add(op.name)
        self.ahead = [op for op in self.ops if op.name in ahead]
        self.stepped = [op for op in self.ops if op.name not in ahead]
        self.late = [op for op in self.stepped if arithmetic.delay_synapses and op.primitive.is_synapse]
        self.late_names = {op.name for op in self.late}
        self.delayed = set() if arithmetic.delay_synapses else {s.name for op in self.ops for s in op.sources if s.delay}
        if arithmetic.delay_synapses:
            self._check_loops(ahead)
        # ops with one input read in the same step: their input block is that source's output block
        self.single_source = {op.name: op.sources[0].name for op in self.stepped if len(op.sources) == 1
                              and (op.sources[0].delay == 0 or arithmetic.delay_synapses)}
        self.kinds = program.event_kinds(input_kinds, arithmetic.pools_count)
        self.counters = {op.name: OpCounter(op) for op in self.ops} if count else {}

    def _check_loops(self, ahead: set[str]) -> None:
        known = ahead | self.late_names
        for op in self.stepped:
            if op.name in self.late_names:
                continue
            for src in op.sources:
                if src.name not in known:
                    raise UnsupportedError(f"loihi mode needs a synapse op in the loop through '{src.name}'",
                                           node=op.name)
            known.add(op.name)

    def _idle(self, op: Op, batch: int) -> torch.Tensor:
        """What op emits before the first step: its response to no input; zero for state."""
        if op.primitive.stateful or op.primitive.is_input:
            return torch.zeros((batch, *op.out_shape), dtype=self.ar.dtype)
        idle = self.kernels[op.name](torch.zeros((1, *op.in_shape), dtype=self.ar.dtype))
        return idle.expand(batch, *op.out_shape).clone()

    def run(self, data: dict[str, np.ndarray]) -> tuple[dict, dict, Counts | None]:
        steps, batch = next(iter(data.values())).shape[:2]
        self.steps, self.outputs = steps, {}
        self.recordings: dict[str, dict[str, np.ndarray]] = {name: {} for name in self.record}
        self.counts = ({op.name: {m: np.zeros((steps, batch), dtype=np.int64) for m in METRICS} for op in self.ops}
                       if self.count else {})
        held = {op.name: self._idle(op, batch) for op in self.late}  # Loihi: output due next step
        # Loihi, synapse ops that run ahead: the input of the step before the block (none at first)
        last_in = {op.name: torch.zeros((batch, *op.in_shape), dtype=self.ar.dtype)
                   for op in self.ahead if self.ar.delay_synapses and op.primitive.is_synapse}
        previous = {name: self._idle(self.program.op(name), batch) for name in self.delayed}
        values: dict[str, torch.Tensor] = {}
        width = max(int(np.prod(op.out_shape)) for op in self.ops)
        block = max(1, min(steps, BLOCK_ELEMENTS // (batch * width)))
        for t0 in range(0, steps, block):
            t1 = min(steps, t0 + block)
            ahead = self._run_ahead(data, t0, t1, batch, last_in)
            seen: dict[str, tuple[list, list]] = {op.name: ([], []) for op in self.stepped}  # inputs, outputs
            for t in range(t0, t1):
                values.update({name: value[t - t0] for name, value in ahead.items()})
                self._step(t, values, previous, held, seen)
            blocks = dict(ahead)
            for op in self.stepped:  # outputs, recorded op outputs and counts: once per block
                inputs, outputs = seen.pop(op.name)
                source = self.single_source.get(op.name)
                x = blocks[source] if source in blocks else torch.stack(inputs)
                blocks[op.name] = y = torch.stack(outputs)
                self._observe(op, t0, x, y, {"out": y} if op.name in self.recordings and not op.is_neuron else {})
        return self.outputs, self.recordings, Counts(self.counts) if self.count else None

    def _step(self, t: int, values: dict, previous: dict, held: dict, seen: dict) -> None:
        """Step t of the ops that do not run ahead; their inputs and outputs go to `seen`."""
        values.update({op.name: held[op.name] for op in self.late})  # Loihi: delivered now
        for op in self.stepped:
            if op.name in self.late_names:
                continue
            x = _fan_in([previous[s.name] if s.delay and s.name in previous else values[s.name] for s in op.sources])
            values[op.name] = y = self.kernels[op.name](x)
            seen[op.name][0].append(x)
            seen[op.name][1].append(y)
            if op.name in self.recordings and op.is_neuron:
                for key, value in self.kernels[op.name].record().items():
                    _store(self.recordings[op.name], key, self.steps, t, value[None])
        for op in self.late:  # Loihi: take in this step's input, deliver it next step
            x = _fan_in([values[s.name] for s in op.sources])
            held[op.name] = self.kernels[op.name](x)
            seen[op.name][0].append(x)
            seen[op.name][1].append(values[op.name])
        for name in self.delayed:
            previous[name] = values[name]

    def _run_ahead(self, data, t0: int, t1: int, batch: int, last_in: dict) -> dict[str, torch.Tensor]:
        """Steps t0..t1 of the ops that depend on the inputs only, as (t1 - t0, B, ...) blocks."""
        ahead: dict[str, torch.Tensor] = {}
        for op in self.ahead:
            x = None
            if op.primitive.is_input:
                y = self.ar.to_tensor(data[op.name][t0:t1])
            else:
                x = _fan_in([ahead[s.name] for s in op.sources])
                delayed = x
                if op.name in last_in:  # Loihi: the previous step's input (cheaper to shift than the output)
                    delayed, last_in[op.name] = torch.cat([last_in[op.name][None].to(x.dtype), x[:-1]]), x[-1]
                y = self.kernels[op.name](delayed.reshape(-1, *op.in_shape)).reshape(t1 - t0, batch, *op.out_shape)
            ahead[op.name] = y
            self._observe(op, t0, x, y, {"out": y} if op.name in self.recordings else {})
        return ahead

    def _observe(self, op: Op, t0: int, x, y: torch.Tensor, state: dict[str, torch.Tensor]) -> None:
        """Store what steps t0.. of op produced, each (steps, B, ...): outputs, recordings, counts."""
        if op.primitive.is_output:
            _store(self.outputs, op.name, self.steps, t0, y)
        for key, value in state.items():
            _store(self.recordings[op.name], key, self.steps, t0, value)
        if self.count:
            input_kind = combine_kinds([self.kinds[s.name] for s in op.sources]) if op.sources else None
            result = self.counters[op.name](None if x is None else x.numpy(), y.numpy(),
                                            input_kind=input_kind, output_kind=self.kinds[op.name])
            for metric, value in result.items():
                self.counts[op.name][metric][t0:t0 + y.shape[0]] = value
