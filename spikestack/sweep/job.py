"""`sweep`: accuracy, energy and latency per inference over a dataset, for every combination of
time steps, arithmetic (float, loihi) and chip, with the data cut into chunks run as Dask tasks.

The driver plans (checks everything, calibrates Loihi's headroom), then runs one task per
configuration x chunk where the scheduler says, reduces the small results in task order and writes
the table and plots. See docs/sweep.md.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Sequence

from spikestack.outputs import check_outputs
from spikestack.pipeline.stages import dataset_directory
from spikestack.sweep import (CALIBRATION_SAMPLES, CONNECT_TIMEOUT_S, DEFAULT_CHIPS, DEFAULT_CHUNK_SIZE, DEFAULT_STEPS,
                              MODES)
from spikestack.sweep.plan import check_scheduler, plan_sweep
from spikestack.sweep.report import SWEEP_FILES, SweepResult, reduce_results, write_outputs
from spikestack.sweep.schedule import default_workers, open_client, run_tasks
from spikestack.sweep.task import clear_caches


def sweep(graph_path: str | os.PathLike, dataset: str, steps: Sequence[int] | str = DEFAULT_STEPS,
          modes: Sequence[str] | str = MODES, chips: Sequence[str] = DEFAULT_CHIPS,
          chunk_size: int = DEFAULT_CHUNK_SIZE, scheduler: str = "none", workers: int | None = None,
          out_dir: str | os.PathLike = "out/sweep", preset: str | None = None, limit: int | None = None,
          seed: int = 0, *, dt_seconds: float | None = None, calibration_samples: int = CALIBRATION_SAMPLES,
          connect_timeout: float = CONNECT_TIMEOUT_S, progress: bool = True,
          on_progress: Callable[[int, int], None] | None = None, echo: Callable[[str], None] = print,
          **options) -> SweepResult:
    """Run the sweep and write sweep.json, sweep.csv and the plots into out_dir.

    graph_path: a .nir file; dataset: 'digits', 'fashion-mnist' or an MNIST-layout IDX directory
    (its test split; `limit` keeps the first N samples). steps x modes are the configurations, each
    run on every chunk of `chunk_size` samples and estimated on every chip (profile names or YAML
    paths). scheduler: 'none' (in this process), 'local' (a LocalCluster of `workers` processes,
    default one per core) or a scheduler address. seed: the rate coding's seed (each sample draws
    from its own stream). dt_seconds: seconds per step for static power and real-time chips
    (default: the lowering dt, as `spikestack energy` reads it). calibration_samples: training
    images whose float run sets Loihi's headroom. on_progress(done, total): called after each task.
    **options: lowering options (dt, reset, reset_timing, initial_potential, integration).

    Raises one SpikestackError before any task is sent for anything wrong with the request.
    """
    begin = time.perf_counter()
    check_scheduler(scheduler, workers, connect_timeout)
    check_outputs({"--out": out_dir}, {"GRAPH": graph_path, "--dataset": dataset_directory(dataset)},
                  {"--out": SWEEP_FILES.values()})  # before planning: a refused sweep runs nothing
    options = {k: v for k, v in {"preset": preset, **options}.items() if v is not None}
    try:
        plan = plan_sweep(graph_path, dataset, steps, modes, chips, chunk_size, limit, seed, dt_seconds,
                          calibration_samples, options)
        tasks = plan.tasks
        echo(f"sweep: {len(plan.configs)} configurations x {len(plan.chunks)} chunks = {len(tasks)} tasks on "
             f"{plan.samples} samples, chips {', '.join(plan.chip_names)}")
        with open_client(scheduler, workers, connect_timeout, echo) as client:
            start = time.perf_counter()
            results = run_tasks(tasks, client, progress, on_progress)
            run_s = time.perf_counter() - start
    finally:
        clear_caches()  # planning (and in-process tasks) loaded the graph and the dataset here
    result = reduce_results(plan, results)
    src = plan.source
    result.meta = {"graph": src.graph, "dataset": src.dataset, "samples": plan.samples, "seed": seed,
                   "steps": sorted({c.steps for c in plan.configs}), "modes": list(dict.fromkeys(c.mode for c in plan.configs)),
                   "chips": list(plan.chip_names), "chunk_size": chunk_size, "chunks": len(plan.chunks),
                   "lowering_options": {k: v for k, v in src.options}, "dt_seconds": src.dt_seconds,
                   "dt_source": plan.dt_source, "calibration_samples": calibration_samples,
                   "scheduler": scheduler, "workers": workers or (default_workers() if scheduler == "local" else None),
                   "tasks": len(tasks),
                   "run_s": round(run_s, 3), "wall_s": round(time.perf_counter() - begin, 3)}
    result.files = write_outputs(result, out_dir)
    echo(f"sweep: {len(tasks)} tasks ran in {run_s:.1f} s ({result.meta['wall_s']:.1f} s in all)")
    return result
