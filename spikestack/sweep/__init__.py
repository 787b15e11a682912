"""Dataset-scale sweeps on Dask: accuracy, energy and latency per inference for every combination of
time steps, arithmetic and chip (`spikestack sweep`, docs/sweep.md).

`plan` checks a request and cuts it into tasks, `task` runs one chunk on a worker (the chain itself
is the pipeline job `spikestack.pipeline.evaluate_chunk`), `schedule` sends the tasks to Dask or runs
them here, `report` reduces and writes the table, and `job` is `sweep` itself, driving them all.

The defaults live here, in a module that imports nothing, so the CLI (`spikestack.cli.sweep`) can
build its parser without loading torch; everything else loads the stages and is imported on first
use (PEP 562).
"""

from importlib import import_module

MODES = ("float", "loihi")
DEFAULT_STEPS = (8, 16, 32)
DEFAULT_CHIPS = ("loihi",)
DEFAULT_CHUNK_SIZE = 500  # 20 tasks per configuration on a 10 000-sample test set; ~50 MB of spikes at T=32
CALIBRATION_SAMPLES = 128
CONNECT_TIMEOUT_S = 10.0

_LAZY = {"sweep": "job", "SweepResult": "report", "pareto_front": "report", "SweepPlan": "plan",
         "plan_sweep": "plan", "ChunkTask": "task", "ChunkResult": "task", "run_chunk": "task"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"spikestack.sweep.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'spikestack.sweep' has no attribute {name!r}")


__all__ = ["CALIBRATION_SAMPLES", "CONNECT_TIMEOUT_S", "DEFAULT_CHIPS", "DEFAULT_CHUNK_SIZE", "DEFAULT_STEPS", "MODES",
           *_LAZY]
