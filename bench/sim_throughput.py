"""Simulator throughput on workload W (BRIEF §8): 784-256-10 LIF MLP, T=100, Bernoulli(0.1) input.

v <- 0.9 v + W^T s, spike if v > 1, reset to 0; W1 ~ N(0, 0.08^2), W2 ~ N(0, 0.25^2). The graph is
built as NIR nodes (LIF tau = 10 ms, r = 10, dt = 1 ms: alpha = 0.9, gain = 1) and lowered like any
other. For each --batch size it prints sample-steps/s (samples x T / s, median of --repeats runs) of:
- our simulator on --engine (compiled by default), float and loihi modes, with counting on;
- the plain torch dense step loop of BRIEF §8 (no counts) on --threads threads, and on one (on a
  shared 2-core machine a second thread can slow it several-fold);
and of Lava 0.10 fixed_pt at B=1 (it has no batch dimension): --lava-steps steps timed after a 5-step
start (and, for reference, including compilation and start-up); --lava-steps 0 skips Lava.
Targets: at B=1, float >= 4x torch and >= 50x a running Lava (our sample-steps/s against its
steps/s); at B=1000, float >= 1.5x torch and loihi >= 1.0x torch. The runs of one batch size are
timed in turn within each repeat, because the load of a shared machine changes by the minute; ratios
are medians of the per-repeat ratios. The script stops with one line if simulate() rejects --engine.

    .venv/bin/python bench/sim_throughput.py [--batch 1 1000] [--steps 100] [--repeats 7] [--lava-steps 50]
                                             [--engine compiled|reference] [--threads 2] [--seed 0] [--quick]
    .venv/bin/python bench/sim_throughput.py --engine reference --lava-steps 0   # no Lava, the old engine
    .venv/bin/python bench/sim_throughput.py --quick --engine reference          # smoke run: T=20, 3 repeats
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import nir
import numpy as np
import torch

from spikestack.errors import SpikestackError
from spikestack.ir import build_graph, lower_graph, resolve_options
from spikestack.ir.program import Program
from spikestack.ir.quantise import quantise_program
from spikestack.simulators import simulate

SIZES = (784, 256, 10)
ENGINES = ("compiled", "reference")
# ratio to the torch dense loop (same threads) that each mode must reach, by batch size; and to Lava
TARGETS: dict[int, dict[str, float]] = {1: {"float": 4.0}, 1000: {"float": 1.5, "loihi": 1.0}}
LAVA_TARGET = 50.0  # float at B=1, sample-steps/s, against a running Lava's steps/s


def workload(seed: int, sizes: tuple[int, int, int] = SIZES) -> tuple[Program, np.ndarray, np.ndarray]:
    """W (or a W-like 784-H-10 MLP with W's weight scales): the lowered Program and W1, W2 as (out, in)."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.08, (sizes[1], sizes[0])).astype(np.float32)
    w2 = rng.normal(0, 0.25, (sizes[2], sizes[1])).astype(np.float32)

    def lif(n):
        return nir.LIF(tau=np.full(n, 1e-2), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))

    nodes = {"input": nir.Input(input_type={"input": np.array([sizes[0]])}), "fc1": nir.Linear(weight=w1),
             "lif1": lif(sizes[1]), "fc2": nir.Linear(weight=w2), "lif2": lif(sizes[2]),
             "output": nir.Output(output_type={"output": np.array([sizes[2]])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    graph = build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return lower_graph(graph, resolve_options(dt=1e-3, reset="zero")), w1, w2


def torch_loop(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """The plain dense step loop of BRIEF §8."""
    v1 = torch.zeros(x.shape[1], w1.shape[1])
    v2 = torch.zeros(x.shape[1], w2.shape[1])
    total = torch.zeros(())
    for xt in x:
        v1 = 0.9 * v1 + xt @ w1
        s1 = (v1 > 1).float()
        v1 = v1 * (1 - s1)
        v2 = 0.9 * v2 + s1 @ w2
        s2 = (v2 > 1).float()
        v2 = v2 * (1 - s2)
        total = total + s2.sum()
    return total


def torch_runner(x: np.ndarray, w1: np.ndarray, w2: np.ndarray, threads: int) -> Callable[[], None]:
    """The torch loop on x with W1, W2 given as (out, in), on `threads` threads (restored after)."""
    xt = torch.as_tensor(x, dtype=torch.float32)
    w1t, w2t = torch.as_tensor(w1.T.copy()), torch.as_tensor(w2.T.copy())

    def run() -> None:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                torch_loop(xt, w1t, w2t)
        finally:
            torch.set_num_threads(before)

    return run


def interleaved_times(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall seconds of each run in every repeat, the runs timed in turn within each repeat so that
    the load of a shared machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def interleaved_rates(runs: dict, work: int, repeats: int) -> tuple[dict, dict, dict]:
    """Median sample-steps/s of each run (`interleaved_times`), and the median per-repeat ratio of
    each to "torch"."""
    times = interleaved_times(runs, repeats)
    rates = {name: work / statistics.median(t) for name, t in times.items()}
    ratios = {name: statistics.median(r / t for r, t in zip(times["torch"], times[name])) for name in runs}
    return rates, ratios, times


def check_engine(program, x: np.ndarray, engine: str) -> None:
    """Two steps of one sample on `engine` before any timing: a simulate() that has no such engine
    (or no engine= at all) stops the script with one line instead of a traceback minutes later."""
    try:
        simulate(program, x[:2, :1], mode="float", count=True, engine=engine)
    except (TypeError, SpikestackError) as error:
        raise SystemExit(f"{Path(sys.argv[0]).name}: simulate() rejects engine={engine!r} "
                         f"({type(error).__name__}: {error})") from None


def measure_w(batch: int, steps: int, repeats: int, threads: int, engine: str, seed: int = 0) -> dict:
    """W at one batch size: float and loihi (counts on) and the torch loop on `threads` and on 1
    thread, interleaved; rates, ratios to torch, and the workload's activity from one counted run."""
    program, w1, w2 = workload(seed)
    qprog, _ = quantise_program(program)
    x = np.random.default_rng(seed + 1).random((steps, batch, SIZES[0])) < 0.1  # spikes as bool
    check_engine(program, x, engine)
    simulate(qprog, x[:2, :1], mode="loihi", count=True, engine=engine)  # any compilation stays out of the timing
    run = simulate(program, x, mode="float", count=True, engine=engine)
    runs = {"float": lambda: simulate(program, x, mode="float", count=True, engine=engine),
            "loihi": lambda: simulate(qprog, x, mode="loihi", count=True, engine=engine),
            "torch": torch_runner(x, w1, w2, threads), "torch1": torch_runner(x, w1, w2, 1)}
    rates, ratios, times = interleaved_rates(runs, steps * batch, repeats)
    # the faster torch loop of each repeat, in case a second thread only costs on a loaded machine
    best = {name: statistics.median(min(a, b) / t for a, b, t in zip(times["torch"], times["torch1"], times[name]))
            for name in ("float", "loihi")}
    return dict(batch=batch, steps=steps, repeats=repeats, threads=threads, engine=engine, rates=rates,
                ratios=ratios, best=best, events=run.counts.total("synaptic_events") / batch,
                hidden=run.counts.total("spikes_out", "lif1") / (batch * steps * SIZES[1]),
                qprog=qprog, x=x)


def verdict(value: float, target: float | None) -> str:
    return "" if target is None else f" (target >= {target:g}: {'met' if value >= target else 'NOT met'})"


def print_w(m: dict) -> None:
    b, steps, threads = m["batch"], m["steps"], m["threads"]
    print(f"workload W, B={b}, T={steps}, engine {m['engine']}: hidden rate {m['hidden']:.3f}, "
          f"{m['events'] / 1e6:.2f} M synaptic events per sample; median of {m['repeats']} runs")
    print(f"  {'run':<28}{'sample-steps/s':>16}{'samples/s':>12}")
    labels = {"float": "simulator float (counts)", "loihi": "simulator loihi (counts)",
              "torch": f"torch dense loop, {threads} thr", "torch1": "torch dense loop, 1 thr"}
    for name, rate in m["rates"].items():
        print(f"  {labels[name]:<28}{rate:>16,.0f}{rate / steps:>12,.1f}")
    targets = TARGETS.get(b, {})
    shown = (f"{mode} {m['ratios'][mode]:.2f}{verdict(m['ratios'][mode], targets.get(mode))}"
             for mode in ("float", "loihi"))
    print("  / torch (median per-repeat ratio): " + ", ".join(shown))
    # the same targets against the faster loop: a busy core slows a 2-thread torch loop several-fold
    shown = (f"{mode} {m['best'][mode]:.2f}{verdict(m['best'][mode], targets.get(mode))}" for mode in ("float", "loihi"))
    print(f"  / the faster torch loop of each repeat (1 or {threads} threads): " + ", ".join(shown))


def lava_rate(qprog, x: np.ndarray, steps: int) -> tuple[float, float]:
    """Steps/s of Lava's fixed_pt models on the quantised network at B=1: while running (timed
    after a 5-step start), and over the whole run including compilation and process start-up."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF

    def lif(q, n):
        return LIF(shape=(n,), du=int(q.du.flat[0]), dv=int(q.dv.flat[0]), vth=int(q.vth.flat[0]),
                   bias_mant=q.bias_mant, bias_exp=q.bias_exp)

    source = RingBuffer(data=x[:, 0].T.astype(np.int32))
    s1, s2 = qprog.synapses["fc1"], qprog.synapses["fc2"]
    fc1, fc2 = Dense(weights=s1.weight, weight_exp=s1.weight_exp), Dense(weights=s2.weight, weight_exp=s2.weight_exp)
    lif1, lif2 = lif(qprog.neurons["lif1"], SIZES[1]), lif(qprog.neurons["lif2"], SIZES[2])
    source.s_out.connect(fc1.s_in)
    fc1.a_out.connect(lif1.a_in)
    lif1.s_out.connect(fc2.s_in)
    fc2.a_out.connect(lif2.a_in)
    begin = time.perf_counter()
    try:
        source.run(condition=RunSteps(num_steps=5), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        start = time.perf_counter()
        source.run(condition=RunSteps(num_steps=steps))
        end = time.perf_counter()
        return steps / (end - start), (steps + 5) / (end - begin)
    finally:
        source.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 1000], help="batch sizes, each timed on its own")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--lava-steps", type=int, default=50, help="Lava steps timed at B=1; 0 skips Lava")
    parser.add_argument("--engine", choices=ENGINES, default="compiled", help="the simulator's engine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the simulator uses them for large products)")
    parser.add_argument("--quick", action="store_true", help="T=20, 3 repeats, 20 Lava steps (if any): a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats, args.lava_steps = 20, 3, min(args.lava_steps, 20)
    if args.repeats < 1 or args.steps < 1 or min(args.batch) < 1 or args.lava_steps < 0:
        parser.error("--repeats, --steps and --batch must be >= 1, --lava-steps >= 0")
    torch.set_num_threads(args.threads)
    measured = {}
    for batch in args.batch:
        measured[batch] = measure_w(batch, args.steps, args.repeats, args.threads, args.engine, args.seed)
        print_w(measured[batch])
    if args.lava_steps == 0:
        print("lava: skipped (--lava-steps 0)")
        return
    any_run = next(iter(measured.values()))  # the quantised W and the input are the same at every B
    try:
        lava, lava_total = lava_rate(any_run["qprog"], any_run["x"].astype(np.int64), args.lava_steps)
    except ImportError:
        print("lava: not importable here (needs Python 3.10), skipped")
        return
    print(f"lava fixed_pt, B=1: {lava:,.0f} steps/s running ({lava / args.steps:,.2f} samples/s); "
          f"{lava_total:,.1f} steps/s counting compile and start-up")
    if 1 not in measured:
        print("float / lava: not computed (the target is at B=1; add 1 to --batch)")
        return
    ours = measured[1]["rates"]
    print(f"float at B=1 / running lava: {ours['float'] / lava:,.1f}{verdict(ours['float'] / lava, LAVA_TARGET)}, "
          f"loihi at B=1 / lava: {ours['loihi'] / lava:,.1f}; float / lava including its start-up: "
          f"{ours['float'] / lava_total:,.0f}")


if __name__ == "__main__":
    main()
