"""Our Lava processes: `ProgramNeuron` for what the stock LIF cannot express, recorders for traces.

`ProgramNeuron` runs subtractive reset, a nonzero v_reset, an initial potential, snnTorch's delayed
reset, per-neuron time constants, Norse's voltage-first CubaLIF and non-spiking readouts (LI, CubaLI,
I). The process is the Lava interface (ports and state Vars, as Lava's LIF declares them); its two
models are thin wrappers around the ir, which owns the arithmetic and the initial state: the float
model calls `spikestack.ir.dynamics.neuron_step` with the Program's own coefficients, the
bit-accurate model `spikestack.ir.fixed.neuron_step_fixed` with the integers of `ir.quantise` (as
the simulator's loihi mode does). Neither repeats an equation.

Traces go to .npy files that the models write step by step (`Recorder` is a sink for any port,
`StateRecorder` a Monitor for any Var): Lava's own Var.get and Var.set move arrays one element per
message, about 25 us each, which made reading a conv layer's trace take seconds. For the same
reason a ProgramNeuron returns to its initial state by itself at the first step of every sample
instead of being reset from outside. Imported only in the child process that runs Lava.
"""

from __future__ import annotations

import traceback
from typing import Callable

import numpy as np

from spikestack.backends.lava.shim import (
    CPU, AbstractProcess, InPort, LavaPyType, LoihiProtocol, OutPort, PyInPort, PyLoihiProcessModel, PyOutPort,
    PyRefPort, RefPort, Var, implements, requires, tag,
)
from spikestack.ir.dynamics import NeuronState, initial_state, neuron_step
from spikestack.ir.fixed import FixedState, NeuronInts, initial_fixed_state, neuron_step_fixed


class _TraceWriter(PyLoihiProcessModel):
    """Shared by our models: errors made visible, the step within the sample, the trace files."""

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._files: dict[str, np.ndarray] | None = None

    @staticmethod
    def visibly(phase: Callable[[], None]) -> None:
        try:
            phase()
        except Exception:
            # Lava logs a failed process's traceback at INFO level only, which nobody sees: print it
            # to the child's log, from which the parent quotes the error (child.py).
            traceback.print_exc()
            raise

    def step_in_sample(self) -> int:
        return (self.time_step - 1) % self.proc_params["n_steps"]

    def write(self, t: int, values: dict[str, np.ndarray]) -> None:
        if self._files is None:  # opened here, in the Lava process that writes them
            self._files = {k: np.load(path, mmap_mode="r+") for k, path in self.proc_params["traces"].items()}
        for key, array in self._files.items():
            array[t] = values[key]


class Recorder(AbstractProcess):
    """A sink that writes what it receives, one row per step, into a .npy file (n_steps, *shape)."""

    def __init__(self, *, shape: tuple, path: str, n_steps: int, name: str | None = None) -> None:
        super().__init__(shape=shape, traces={"out": path}, n_steps=n_steps, name=name)
        self.a_in = InPort(shape=shape)


class _RecorderModel(_TraceWriter):
    def run_spk(self) -> None:
        self.visibly(lambda: self.write(self.step_in_sample(), {"out": self.a_in.recv()}))


@implements(proc=Recorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyRecorderModelFloat(_RecorderModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


@implements(proc=Recorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRecorderModelFixed(_RecorderModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)


class StateRecorder(AbstractProcess):
    """Lava's Monitor, writing to a .npy file: reads a Var through a RefPort after every step.

    Connect it with `recorder.ref.connect_var(var)`."""

    def __init__(self, *, shape: tuple, path: str, n_steps: int, name: str | None = None) -> None:
        super().__init__(shape=shape, traces={"out": path}, n_steps=n_steps, name=name)
        self.ref = RefPort(shape=shape)


class _StateRecorderModel(_TraceWriter):
    def post_guard(self) -> bool:
        return True

    def run_post_mgmt(self) -> None:
        self.visibly(lambda: self.write(self.step_in_sample(), {"out": self.ref.read()}))


@implements(proc=StateRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyStateRecorderModelFloat(_StateRecorderModel):
    ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)


@implements(proc=StateRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyStateRecorderModelFixed(_StateRecorderModel):
    ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32, precision=24)


class ProgramNeuron(AbstractProcess):
    """A population of Program neurons.

    shape: Lava shape. coeffs: `NeuronCoefficients` in Lava layout (float model), or for fixed point
    a dict of the `NeuronInts` fields in Lava layout (the job file carries no NeuronInts). start: first step that updates (earlier steps send zeros).
    biases: (array, first step) pairs added to the input, for NIR synapse biases, which Lava's
    connection processes lack. v_init: v at step 0. n_steps: steps per sample. traces: "s", "v"
    or "i" -> .npy file to write each step.
    """

    def __init__(self, *, shape: tuple, coeffs, v_init, start: int = 0, biases: tuple = (), n_steps: int = 1,
                 traces: dict | None = None, name: str | None = None) -> None:
        super().__init__(shape=shape, coeffs=coeffs, v_init=v_init, start=start, biases=biases, n_steps=n_steps,
                         traces=traces or {}, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.i = Var(shape=shape, init=0)  # the current; Lava's u register in fixed point
        self.v = Var(shape=shape, init=v_init)
        self.s = Var(shape=shape, init=0)
        self.pending = Var(shape=shape, init=0)  # fixed point, voltage-first CubaLIF: last step's a_in


class _ProgramNeuronModel(_TraceWriter):
    """Shared by both models; each defines `restart()` (to the initial state) and `update(x) -> output`,
    delegating both to the ir."""

    def run_spk(self) -> None:
        self.visibly(self.step)

    def step(self) -> None:
        a_in = self.a_in.recv()
        p, t = self.proc_params, self.step_in_sample()
        if t == 0:  # a new sample starts from the initial state
            self.restart()
        out = np.zeros_like(a_in)
        if t >= p["start"]:
            x = a_in + sum((b for b, first in p["biases"] if t >= first), np.zeros_like(a_in))
            out = self.update(x)
        self.write(t, {"i": self.i, "v": self.v, "s": self.s})
        self.s_out.send(out)


@implements(proc=ProgramNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyProgramNeuronModelFloat(_ProgramNeuronModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    i: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    s: np.ndarray = LavaPyType(np.ndarray, float)
    pending: np.ndarray = LavaPyType(np.ndarray, float)

    def restart(self) -> None:
        state = initial_state(self.proc_params["coeffs"], np.zeros(self.v.shape))
        self.i[:], self.v[:], self.s[:] = state.i, state.v, state.s

    def update(self, x: np.ndarray) -> np.ndarray:
        out, state = neuron_step(x, NeuronState(self.i, self.v, self.s), self.proc_params["coeffs"])
        self.i[:], self.v[:], self.s[:] = state.i, state.v, state.s
        return out


@implements(proc=ProgramNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyProgramNeuronModelFixed(_ProgramNeuronModel):
    """Bit-accurate: `ir.fixed.neuron_step_fixed`, Lava's `PyLifModelBitAcc` update with the
    extensions that the simulator's loihi mode runs too, on the quantised integers."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    i: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    s: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    pending: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.ints = NeuronInts(**proc_params["coeffs"])

    def restart(self) -> None:
        self.store(initial_fixed_state(self.ints, self.v.shape))

    def update(self, x: np.ndarray) -> np.ndarray:
        out, state = neuron_step_fixed(x, FixedState(u=self.i, v=self.v, s=self.s, pending=self.pending), self.ints)
        self.store(state)
        return out

    def store(self, state: FixedState) -> None:
        """Into the Vars (int32, as Lava's LIF keeps its state), where monitors and traces read it."""
        self.i[:], self.v[:], self.s[:], self.pending[:] = state.u, state.v, state.s, state.pending
