"""The compiled engine's entry point: threads, the first call's compile time, and a lazy import.

numba is imported on the first compiled run only (it costs ~0.5 s), so the CLI's help and the
commands that never simulate stay fast. The kernels are compiled on their first use with a given
signature and cached on disk (numba's cache, beside the package or in NUMBA_CACHE_DIR); the time
spent compiling is kept in `COMPILE_LOG` so that the CLI can report it.
"""

from __future__ import annotations

import time

import numpy as np

COMPILE_LOG: list[float] = []  # seconds spent compiling (or loading from the disk cache), per run that did
_PREPARED: dict[tuple, tuple] = {}  # the last few executors, their arrays prepared: key -> (program, executor)
PREPARED_KEPT = 8


def _signatures() -> int:
    """Compiled signatures of every kernel loaded so far (numba's dispatchers): a run that adds one
    compiled, or loaded from the disk cache."""
    return sum(len(d.signatures) for d in _dispatchers())


def _dispatchers():
    import numba

    from spikestack.simulators.compiled import convolution, events, specialise, synapses

    for module in (events, synapses, convolution):
        yield from (v for v in vars(module).values() if isinstance(v, numba.core.registry.CPUDispatcher))
    yield from specialise.loaded()


def _executor(program, qprog, dtype, kinds, record, count, threads):
    """A CompiledExecutor for this Program and these settings, reused across calls (benches and
    sweeps call simulate in loops; preparing the weights and fan-outs costs a few milliseconds).
    Keyed by identity: Programs are immutable, and the entry keeps its Program alive."""
    from spikestack.simulators.compiled.engine import CompiledExecutor

    key = (id(program), id(qprog), np.dtype(dtype).str, tuple(sorted(kinds.items())), tuple(record), count, threads)
    if key not in _PREPARED:  # (executor, whether it is new: only a new one can compile kernels)
        if len(_PREPARED) >= PREPARED_KEPT:
            _PREPARED.pop(next(iter(_PREPARED)))
        _PREPARED[key] = ((program, qprog), CompiledExecutor(program, qprog, dtype, kinds, record, count))
        return _PREPARED[key][1], True
    return _PREPARED[key][1], False


def run_compiled(program, qprog, dtype, kinds: dict[str, str], data: dict[str, np.ndarray], record, count: bool,
                 threads: int):
    """Run with the compiled engine on `threads` threads (`compiled.threads`); returns (outputs,
    recordings, counts) as the reference executor does."""
    from spikestack.simulators.compiled.threads import set_threads

    set_threads(min(threads, next(iter(data.values())).shape[1]))
    executor, new = _executor(program, qprog, dtype, kinds, record, count, threads)
    before, start = (_signatures(), time.perf_counter()) if new else (None, None)
    result = executor.run(data)
    if new and _signatures() > before:  # a first run compiles (or loads from the disk cache)
        COMPILE_LOG.append(time.perf_counter() - start)
    return result
