"""`CompiledExecutor`: runs a Program with the compiled kernels, in blocks of steps.

The semantics are the reference executor's (`simulators/executor.py`, whose docstring they follow
and whose results tests hold this engine to): float mode reads a back edge's source as it was one
step earlier, starting from its response to no input; Loihi mode delivers every synapse op's output
one step late, starting with its response to no input, and needs a synapse in every loop.

Ops outside loops run a whole block per kernel call (the time loop inside compiled code); the
ops of a loop (`plan.execution_units`) advance one step per call, together. A block holds as many
steps as keep every op's values within BLOCK_VALUES.
"""

from __future__ import annotations

import numpy as np

from spikestack.errors import UnsupportedError
from spikestack.ir.program import Program, combine_kinds
from spikestack.ir.quantise import QuantisedProgram
from spikestack.ir.run import METRICS, Counts
from spikestack.simulators.compiled import events
from spikestack.simulators.compiled.events import KIND_CODES, SPIKES_OUT
from spikestack.simulators.compiled.ops import NeuronRunner, Runner, make_runner
from spikestack.simulators.compiled.plan import execution_units
from spikestack.simulators.compiled.threads import over_samples, thread_count

BLOCK_VALUES = 1 << 23  # values of all ops held for one block (64 MiB at 8 bytes)


class CompiledExecutor:
    def __init__(self, program: Program, qprog: QuantisedProgram | None, dtype, input_kinds: dict[str, str],
                 record: tuple[str, ...], count: bool):
        self.program, self.record, self.count = program, record, count
        self.loihi = qprog is not None
        self.dtype = np.dtype(np.int64 if self.loihi else dtype)
        kinds = program.event_kinds(input_kinds, pools_count=not self.loihi)
        self.runners: dict[str, Runner] = {}
        for op in program.ops:
            taken = combine_kinds([kinds[s.name] for s in op.sources]) if op.sources else kinds[op.name]
            self.runners[op.name] = make_runner(op, self.dtype, (KIND_CODES[taken], KIND_CODES[kinds[op.name]]), qprog)
        self.units = execution_units(program)
        self.late = {op.name for op in program.ops if self.loihi and op.primitive.is_synapse}
        # float mode: sources read one step late (back edges); Loihi ignores them (its synapses delay)
        self.delayed = set() if self.loihi else {s.name for op in program.ops for s in op.sources if s.delay}
        if self.loihi:
            self._check_loops()

    def _check_loops(self) -> None:
        for members, stepped in self.units:
            if not stepped:
                continue
            known = {m for m in members if m in self.late}
            for name in members:
                if name in self.late:
                    continue
                for src in self.program.op(name).sources:
                    if src.name in members and src.name not in known:
                        raise UnsupportedError(f"loihi mode needs a synapse op in the loop through '{src.name}'",
                                               node=name)
                known.add(name)

    # --- one run -------------------------------------------------------------------------

    def run(self, data: dict[str, np.ndarray]) -> tuple[dict, dict, Counts | None]:
        steps, batch = next(iter(data.values())).shape[:2]
        self.steps, self.batch = steps, batch
        chunk, block = self._block_shape(steps, batch)
        self.outputs = {n: np.zeros((steps, batch, self.runners[n].n_out), self.dtype) for n in self.program.outputs}
        # counts per op (B, T, M): a block of samples is contiguous; kernels see it as (S, B, M) (`_counts`)
        self.counts = {n: np.zeros((batch, steps, len(METRICS)), np.int64) for n in self.runners} if self.count else {}
        self.recordings = {n: {} for n in self.record}
        self._buffers(block, chunk)
        for b0 in range(0, batch, chunk):
            b1 = min(batch, b0 + chunk)
            for runner in self.runners.values():
                runner.start(b1 - b0)
            self.held = {n: self._idle(n, b1 - b0) for n in self.late}  # (output due next step, its events)
            self.last = {n: self._idle(n, b1 - b0)[0] for n in self.delayed}  # value one step back
            for t0 in range(0, steps, block):
                self._block(data, t0, min(steps, t0 + block), b0, b1)
        outputs = {n: a.reshape(steps, batch, *self.program.op(n).out_shape) for n, a in self.outputs.items()}
        counts = None
        if self.count:
            counts = Counts({n: {m: c[:, :, k].T for k, m in enumerate(METRICS)} for n, c in self.counts.items()})
        return outputs, self.recordings, counts

    def _block_shape(self, steps: int, batch: int) -> tuple[int, int]:
        """(samples, steps) per block: all steps of as many samples as BLOCK_VALUES holds, so that each
        sample's state stays in cache over the whole run, and at least one sample per thread (the
        threads split a block's samples); steps in blocks only where that is too much."""
        width = sum(r.n_out + r.n_in for r in self.runners.values())
        chunk = min(batch, max(thread_count(), BLOCK_VALUES // max(1, steps * width)))
        block = max(1, min(steps, BLOCK_VALUES // max(1, chunk * width)))
        return chunk, block

    def _buffers(self, block: int, chunk: int) -> None:
        """One value buffer per op (a row more: Loihi's synapses keep the output due next) and one
        counts buffer, reused by every block and, at the same size, by the next run: fresh arrays
        each block cost more in page faults than the kernels took."""
        if getattr(self, "_buffer_shape", None) == (block, chunk):
            return
        self.buffers = {n: np.empty((block + 1) * chunk * r.n_out, self.dtype) for n, r in self.runners.items()
                        if not (r.op.primitive.is_input or type(r) is Runner)}
        self.count_buffers = {n: np.empty(block * chunk * len(METRICS), np.int64) for n in self.runners}  # no `count`
        self._buffer_shape = (block, chunk)

    def _view(self, name: str, rows: int, samples: int) -> np.ndarray:
        """A C-contiguous (rows, samples, width) view of op `name`'s value buffer: the kernels are
        compiled for contiguous arrays, also in a last, smaller chunk."""
        width = self.runners[name].n_out
        return self.buffers[name][: rows * samples * width].reshape(rows, samples, width)

    def _counts(self, name: str, t0: int, t1: int, b0: int, b1: int) -> np.ndarray:
        """Where the kernels write op `name`'s counts of a block, (S, B, M): a transposed view of the
        run's (B, T, M) counts, written in place; or of a zeroed scratch buffer when not counting."""
        if self.count:
            return self.counts[name][b0:b1, t0:t1].transpose(1, 0, 2)
        size = (b1 - b0) * (t1 - t0) * len(METRICS)
        scratch = self.count_buffers[name][:size].reshape(b1 - b0, t1 - t0, len(METRICS))
        scratch[...] = 0  # kernels write the metrics that apply to their op
        return scratch.transpose(1, 0, 2)

    def _idle(self, name: str, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """What op `name` emits before the first step, and its events: its response to no input
        (a bias), zero for state."""
        runner = self.runners[name]
        out = np.zeros((1, batch, runner.n_out), self.dtype)
        counts = np.zeros((batch, 1, len(METRICS)), np.int64).transpose(1, 0, 2)  # as `_counts` lays them out
        if not (runner.op.primitive.stateful or runner.op.primitive.is_input):
            runner.run(np.zeros((1, batch, runner.n_in), self.dtype), out, counts, 0)
        return out[0].copy(), counts[0, :, SPIKES_OUT].copy()

    def _block(self, data, t0: int, t1: int, b0: int, b1: int) -> None:
        size, samples = t1 - t0, b1 - b0
        self.values: dict[str, np.ndarray] = {}
        self.block_counts: dict[str, np.ndarray] = {}
        for members, stepped in self.units:
            for name in members:
                self.block_counts[name] = self._counts(name, t0, t1, b0, b1)
                runner = self.runners[name]
                if isinstance(runner, NeuronRunner):  # recorded: (S, 3, B, n) v, i, s
                    runner.rec = (np.zeros((size, 3, samples, runner.n_out), self.dtype) if name in self.recordings
                                  else None)
            if stepped:
                for name in members:
                    self.values[name] = self._view(name, size, samples)
                for t in range(t0, t1):
                    self._step(members, t, t0)
            else:
                for name in members:
                    self._run_block(name, data, t0, t1, b0, b1)
        self._keep(t0, t1, b0, b1)

    def _input(self, name: str, j0: int, j1: int, t0: int) -> np.ndarray:
        """Fan-in sum of op `name` over block rows j0..j1 (steps t0 + j)."""
        total = None
        for src in self.program.op(name).sources:
            value = self.values[src.name]
            if src.name in self.delayed and src.delay:
                if j0 == 0:
                    value = np.concatenate([self.last[src.name][None], value[: j1 - 1]])
                else:
                    value = value[j0 - 1: j1 - 1]
            else:
                value = value[j0:j1]
            total = value if total is None else total + value
        return total

    def _run_block(self, name: str, data, t0: int, t1: int, b0: int, b1: int) -> None:
        runner, counts, size, samples = self.runners[name], self.block_counts[name], t1 - t0, b1 - b0
        op = runner.op
        if op.primitive.is_input:  # spikes as bool stay one byte wide: the kernels read them as uint8
            given = data[name][t0:t1, b0:b1]
            dtype = np.uint8 if given.dtype == bool else self.dtype
            x = np.ascontiguousarray(given, dtype=dtype).reshape(size, -1, runner.n_out)
        else:
            x = np.ascontiguousarray(self._input(name, 0, size, t0))
        if type(runner) is Runner:  # moves values: the output is the input, seen in its own shape
            over_samples(events.count_passing, x.shape[1], x, x, runner.kinds[0], runner.kinds[1], counts)
            self.values[name] = x
            return
        if name not in self.late:
            self.values[name] = out = self._view(name, size, samples)
            runner.run(x, out, counts, t0)
            return
        extended = self._view(name, size + 1, samples)  # row 0: due from the last step
        extended[0] = self.held[name][0]
        runner.run(x, extended[1:], counts, t0)
        self.values[name] = extended[:size]
        computed = counts[:, :, SPIKES_OUT].copy()
        counts[:, :, SPIKES_OUT] = np.concatenate([self.held[name][1][None], computed[:-1]])
        self.held[name] = (extended[size].copy(), computed[-1].copy())

    def _step(self, members: list[str], t: int, t0: int) -> None:
        """Step t of a loop's ops: Loihi's synapses deliver, the others run in order, then the synapses
        take in this step's input."""
        j = t - t0
        for name in members:
            if name in self.late:
                self.values[name][j] = self.held[name][0]
                self.block_counts[name][j, :, SPIKES_OUT] = self.held[name][1]
        for name in members:
            if name not in self.late:
                x = np.ascontiguousarray(self._input(name, j, j + 1, t0))
                runner = self.runners[name]
                block_rec = getattr(runner, "rec", None)
                if block_rec is not None:
                    runner.rec = block_rec[j:j + 1]
                runner.run(x, self.values[name][j:j + 1], self.block_counts[name][j:j + 1], t)
                if block_rec is not None:
                    runner.rec = block_rec
        for name in members:
            if name in self.late:
                runner = self.runners[name]
                x = np.ascontiguousarray(self._input(name, j, j + 1, t0))
                out = np.empty((1, x.shape[1], runner.n_out), self.dtype)
                counts = self.block_counts[name][j:j + 1]
                delivered = counts[0, :, SPIKES_OUT].copy()
                runner.run(x, out, counts, t)
                self.held[name] = (out[0], counts[0, :, SPIKES_OUT].copy())
                counts[0, :, SPIKES_OUT] = delivered

    def _keep(self, t0: int, t1: int, b0: int, b1: int) -> None:
        """Store the block's outputs, recordings and counts; remember what back edges read next."""
        for name in self.outputs:
            self.outputs[name][t0:t1, b0:b1] = self.values[name]
        for name in self.delayed:
            self.last[name] = self.values[name][-1].copy()
        for name in self.record:
            runner = self.runners[name]
            shape = (t1 - t0, self.values[name].shape[1], *runner.op.out_shape)
            store = self.recordings[name]
            for key, value in self._recorded(runner).items():
                if key not in store:
                    store[key] = np.zeros((self.steps, self.batch, *shape[2:]), value.dtype)
                store[key][t0:t1, b0:b1] = value.reshape(shape)

    def _recorded(self, runner: Runner) -> dict[str, np.ndarray]:
        """What a recorded op shows: a neuron's v, i (Loihi: the current register u) and s, those
        its kind has; any other op's output."""
        if not isinstance(runner, NeuronRunner):
            return {"out": self.values[runner.op.name]}
        p = runner.ints if runner.ints is not None else runner.op.params
        wanted = {"v": True, "i": p.has_current, "s": p.spiking}
        return {key: runner.rec[:, k] for k, key in enumerate("vis") if wanted[key]}
