"""Instantiate a `LavaPlan` as Lava processes and run the samples of a batch one after another.

Runs only inside the child process that child.py starts (worker.py). The network is compiled once (a few
seconds for a conv net); between samples each stock process's state Vars are set back to their
initial values (ProgramNeurons reset themselves), which is what a fresh network would see for the
next sample. Lava's step counter keeps going: the source's ring buffer holds all samples in a row,
and our processes index by step modulo the sample length. Lava's Var.set and Var.get move one
element per message (about 25 us each), so nothing large goes through them: traces are written to
.npy files by our `Recorder` sinks, `StateRecorder` monitors (a stock LIF's v or u) and the
ProgramNeurons themselves. The runtime is stopped in `finally`: Lava leaves its OS processes behind
otherwise (lava-nc issues #231, #716).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from scipy.sparse import csr_matrix, diags

from spikestack.backends.lava.plan import LavaNode, LavaPlan, write_traces
from spikestack.backends.lava.processes import ProgramNeuron, Recorder, StateRecorder
from spikestack.backends.lava.shim import (
    LIF, Conv, DelayDense, DelaySparse, Dense, Loihi2SimCfg, RunSteps, SourceRingBuffer, Sparse,
)

CONNECTIONS = {"dense": Dense, "sparse": Sparse, "delay_dense": DelayDense, "conv": Conv}
SELECT_TAGS = {"float": "floating_pt", "loihi": "fixed_pt"}  # our mode -> Lava's name for its models
# The state Vars of Lava's stock processes, set back to their `init` between samples.
STOCK_STATE = {"dense": ("a_buff",), "sparse": ("a_buff",), "delay_dense": ("a_buff",), "delay_sparse": ("a_buff",),
               "relay": ("a_buff",), "conv": ("a_buf",), "lif": ("u", "v")}


def _delay_sparse(params: dict, name: str):
    """A DelaySparse from the plan's dense matrices. Its model reads delays as a scipy matrix (the
    process does not convert them as it does the weights), with a delay only where a weight is."""
    weights = csr_matrix(params["weights"])
    delays = csr_matrix(np.where(params["weights"] != 0, params["delays"], 0).astype(np.int64))
    rest = {k: v for k, v in params.items() if k not in ("weights", "delays")}
    return DelaySparse(weights=weights, delays=delays, **rest, name=name)


def _relay(params: dict, name: str):
    """An identity connection that delivers each element params["steps"] (>= 1) late: a Sparse for
    one step, else a DelaySparse (1 + delay steps). Built here from the steps alone: an n x n
    identity need not travel in the job file."""
    steps = np.asarray(params["steps"], dtype=np.int64)
    identity = diags(np.ones(steps.size), format="csr")
    if np.all(steps == 1):
        return Sparse(weights=identity, num_message_bits=params["num_message_bits"], name=name)
    delays = diags((steps - 1).astype(np.int64), format="csr", dtype=np.int64)
    return DelaySparse(weights=identity, delays=delays, num_message_bits=params["num_message_bits"], name=name)


class Network:
    """The Lava processes of a plan, with the recorders and monitors that keep its traces."""

    def __init__(self, plan: LavaPlan, samples: np.ndarray, trace_dir: Path) -> None:
        self.plan, self.trace_dir = plan, trace_dir
        self.files: dict[tuple[str, str], Path] = {}
        # The source holds every sample, one after another in time: its ring buffer then reaches
        # sample b at the step where sample b starts, and never has to be set (element by element).
        stream = np.concatenate(list(samples), axis=-1)
        self.procs = {name: self._make(node, stream) for name, node in plan.nodes.items()}
        for node in plan.nodes.values():
            proc = self.procs[node.name]
            in_port = proc.a_in if node.kind in ("lif", "neuron") else getattr(proc, "s_in", None)
            for view in node.inputs:  # a port of another shape (a Flatten, a Dense after a conv) reshapes
                out = getattr(self.procs[view.proc], view.port)
                (out if out.shape == in_port.shape else out.reshape(in_port.shape)).connect(in_port)
            self._add_probes(node, proc)

    def _trace_file(self, node: str, key: str, shape: tuple) -> str:
        path = self.trace_dir / f"{len(self.files)}.npy"
        dtype = np.int32 if self.plan.mode == "loihi" else np.float64
        np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(self.plan.n_steps, *shape)).flush()
        self.files[(node, key)] = path
        return str(path)

    def _make(self, node: LavaNode, stream: np.ndarray):
        if node.kind == "source":
            return SourceRingBuffer(data=stream)
        if node.kind in CONNECTIONS:
            return CONNECTIONS[node.kind](**node.params, name=node.name)
        if node.kind in ("delay_sparse", "relay"):
            return (_delay_sparse if node.kind == "delay_sparse" else _relay)(node.params, node.name)
        if node.kind == "lif":
            return LIF(**node.params, name=node.name)
        traces = {key: self._trace_file(node.name, key, node.params["shape"]) for key in sorted(node.record)}
        return ProgramNeuron(**node.params, traces=traces, name=node.name)

    def _add_probes(self, node: LavaNode, proc) -> None:
        if node.kind == "neuron":
            return  # a ProgramNeuron writes its own traces
        for key in sorted(node.record):
            if key in ("s", "out"):
                port = proc.s_out if key == "s" or node.kind == "source" else proc.a_out
                path = self._trace_file(node.name, key, port.shape)
                port.connect(Recorder(shape=port.shape, path=path, n_steps=self.plan.n_steps).a_in)
            else:  # a stock LIF's v, or its u for "i"
                var = proc.v if key == "v" else proc.u
                path = self._trace_file(node.name, key, var.shape)
                StateRecorder(shape=var.shape, path=path, n_steps=self.plan.n_steps).ref.connect_var(var)

    def reset(self) -> None:
        """Stock processes back to their step-0 state (ProgramNeurons reset themselves)."""
        for name, node in self.plan.nodes.items():
            for var_name in STOCK_STATE.get(node.kind, ()):
                var = getattr(self.procs[name], var_name)
                var.set(np.broadcast_to(np.asarray(var.init), var.shape).copy())

    def read(self) -> dict[tuple[str, str], np.ndarray]:
        """Every trace of the sample just run, each (n_steps, *Lava shape)."""
        return {key: np.load(path) for key, path in self.files.items()}


def run_samples(plan: LavaPlan, samples: np.ndarray, trace_dir: Path, send: Callable[[list], None]) -> bool:
    """Run each sample (B, *Lava input shape, n_steps) for plan.n_steps; after each, write its traces
    to an .npz file (plan.write_traces) and send(["sample", b, path]). On an exception send(["error",
    one line]) first, then stop Lava (a runtime that failed may hang in stop(): the parent's timeout
    ends it) and return False."""
    source = None
    try:
        net = Network(plan, samples, trace_dir)
        source = net.procs[plan.input]
        config = Loihi2SimCfg(select_tag=SELECT_TAGS[plan.mode])
        for b in range(len(samples)):
            if b:
                net.reset()
            source.run(condition=RunSteps(num_steps=plan.n_steps), run_cfg=config)
            path = trace_dir / f"sample-{b}.npz"
            write_traces(path, net.read())
            send(["sample", b, str(path)])
        return True
    except Exception as exc:  # noqa: BLE001 - whatever Lava raises reaches the user as one line
        send(["error", f"{type(exc).__name__}: {' '.join(str(exc).split())}"])
        return False
    finally:
        if source is not None and source.runtime is not None:
            source.stop()
