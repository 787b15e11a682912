"""The reference engine's entry point: the torch executor (`executor.py`), which the compiled engine
is tested against. Imported only when a run asks for it: it imports torch.
"""

from __future__ import annotations

import numpy as np
import torch

from spikestack.ir.program import Program
from spikestack.ir.quantise import QuantisedProgram
from spikestack.simulators.executor import Arithmetic, Executor
from spikestack.simulators.kernels import Parallel, float_kernel
from spikestack.simulators.kernels_fixed import fixed_kernel
from spikestack.simulators.neurons import NeuronFixed, NeuronFloat

FLOAT_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _float_arithmetic(dtype, parallel: Parallel) -> Arithmetic:
    tdtype = FLOAT_DTYPES[np.dtype(dtype)]

    def kernel(op):
        return NeuronFloat(op, tdtype) if op.is_neuron else float_kernel(op, tdtype, parallel)

    def to_tensor(a: np.ndarray) -> torch.Tensor:  # numpy converts 3-5x faster than torch here
        return torch.from_numpy(np.array(a, dtype=np.dtype(dtype)))

    return Arithmetic(kernel, to_tensor, tdtype, delay_synapses=False, pools_count=True)


def _loihi_arithmetic(qprog: QuantisedProgram, parallel: Parallel) -> Arithmetic:
    def kernel(op):
        return NeuronFixed(qprog.neurons[op.name]) if op.is_neuron else fixed_kernel(op, qprog, parallel)

    def to_tensor(a: np.ndarray) -> torch.Tensor:  # spikes stay one byte wide until multiplied
        return torch.from_numpy(np.asarray(a, dtype=np.uint8 if a.dtype == bool else np.int64))

    return Arithmetic(kernel, to_tensor, torch.int64, delay_synapses=True, pools_count=False)


def run_reference(program: Program, qprog: QuantisedProgram | None, dtype, kinds: dict[str, str],
                  data: dict[str, np.ndarray], record: tuple[str, ...], count: bool):
    """(outputs, recordings, counts) of the torch executor; Loihi arithmetic when qprog is given. The
    torch threads set by the caller serve large products only (`kernels.Parallel`)."""
    parallel = Parallel(torch.get_num_threads())
    arithmetic = _float_arithmetic(dtype, parallel) if qprog is None else _loihi_arithmetic(qprog, parallel)
    torch.set_num_threads(1)
    try:
        return Executor(program, arithmetic, kinds, record, count).run(data)
    finally:
        torch.set_num_threads(parallel.threads)
