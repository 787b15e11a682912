"""Lava 0.10 (CPU, Loihi2SimCfg) against our simulator on the same samples: wall time and ratio.

Workloads, each run by both executors on identical input, outputs checked equal:
- W (BRIEF §8): 784-256-10 LIF MLP, Bernoulli(0.1) input, v <- 0.9 v + W^T s, threshold 1, reset to 0,
  W1 ~ N(0, 0.08^2), W2 ~ N(0, 0.25^2); --samples samples x --steps steps;
- cnn_sinabs.nir (preset sinabs with one spike per step at v > theta, subtractive IF), 1 sample x --steps steps, Bernoulli(0.1) events.

Lava runs the samples one after another (it has no batch dimension) through `run_lava`, which
includes starting its child process and compiling the network; its stepping rate alone comes from
one sample run for 10 T steps against one run for T steps, and the start-up is what remains. The simulator is timed
on the same samples as one batch and, like Lava, one sample at a time. No counting on either side;
each time is the fastest of --repeats runs.

    .venv/bin/python bench/lava_vs_sim.py [--samples 3] [--steps 100] [--mode float|fixed] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nir
import numpy as np
import torch

from spikestack.backends.lava import run_lava
from spikestack.ir import build_graph, load_graph, lower_graph, resolve_options
from spikestack.ir.program import Program
from spikestack.simulators import simulate

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "nir-paper"


def mlp(seed: int) -> Program:
    rng = np.random.default_rng(seed)
    sizes = (784, 256, 10)

    def lif(n):  # tau 10 ms, r 10, dt 1 ms: alpha 0.9, gain 1
        return nir.LIF(tau=np.full(n, 1e-2), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))

    nodes = {"input": nir.Input(input_type={"input": np.array([sizes[0]])}),
             "fc1": nir.Linear(weight=rng.normal(0, 0.08, sizes[1::-1]).astype(np.float32)), "lif1": lif(sizes[1]),
             "fc2": nir.Linear(weight=rng.normal(0, 0.25, sizes[:0:-1]).astype(np.float32)), "lif2": lif(sizes[2]),
             "output": nir.Output(output_type={"output": np.array([sizes[2]])})}
    edges = list(zip(list(nodes)[:-1], list(nodes)[1:]))
    return lower_graph(build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)),
                       resolve_options(dt=1e-3, reset="zero"))


def cnn() -> Program:
    graph = load_graph(FIXTURES / "cnn_sinabs.nir")
    # one spike per step at v > theta, as when BENCHMARKS.md's figures were taken (the sinabs preset now
    # runs Sinabs' MultiSpike at >=, which Lava runs as our ProgramNeuron rather than its stock LIF)
    return lower_graph(graph, resolve_options(graph.metadata, preset="sinabs", threshold=">", spikes_per_step="one"))


def timed(fn, repeats: int):
    """(result, fastest wall time of `repeats` runs): the machine is shared and noisy."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, min(times)


def compare(name: str, program: Program, x: np.ndarray, mode: str, repeats: int) -> None:
    sim_mode = "float" if mode == "float" else "loihi"
    T, B = x.shape[:2]
    lava_run = lambda data: run_lava(program, data, mode, progress=False, count=False)  # noqa: E731
    lava, lava_s = timed(lambda: lava_run(x), repeats)
    # Lava's stepping rate, free of its start-up: one sample of 10 T steps against one of T steps.
    _, short_s = timed(lambda: lava_run(x[:, :1]), repeats)
    _, long_s = timed(lambda: lava_run(np.concatenate([x[:, :1]] * 10)), repeats)
    rate = 9 * T / max(long_s - short_s, 1e-9)
    start_s = max(0.0, lava_s - B * T / rate)  # what the timed run spent besides stepping
    dtype = dict(dtype=np.float64) if mode == "float" else {}
    sim, batch_s = timed(lambda: simulate(program, x, sim_mode, count=False, **dtype), repeats)
    _, one_by_one_s = timed(lambda: [simulate(program, x[:, b:b + 1], sim_mode, count=False, **dtype)
                                     for b in range(B)], repeats)
    same = np.array_equal(lava.output, sim.output)
    print(f"{name}: {B} sample(s) x {T} steps, Lava {mode} vs simulator {sim_mode}; outputs equal: {same}")
    print(f"  Lava      {lava_s:8.2f} s  (start-up about {start_s:.1f} s; {rate:,.0f} sample-steps/s after it)")
    print(f"  simulator {one_by_one_s:8.2f} s one sample at a time, {batch_s:.2f} s as one batch "
          f"({B * T / one_by_one_s:,.0f} and {B * T / batch_s:,.0f} sample-steps/s)")
    print(f"  ratio Lava / simulator: {lava_s / one_by_one_s:,.0f}x one at a time, {lava_s / batch_s:,.0f}x batched; "
          f"stepping rates alone: {B * T / one_by_one_s / rate:,.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--mode", choices=("float", "fixed"), default="float")
    parser.add_argument("--repeats", type=int, default=2, help="runs per measurement; the fastest counts")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = (rng.random((args.steps, args.samples, 784)) < 0.1).astype(np.float64)
    compare("784-256-10 LIF MLP (workload W)", mlp(1), x, args.mode, args.repeats)
    x = (rng.random((args.steps, 1, 2, 34, 34)) < 0.1).astype(np.float64)
    compare("cnn_sinabs.nir", cnn(), x, args.mode, args.repeats)


if __name__ == "__main__":  # run_lava starts a child process: keep the work out of imports
    main()
