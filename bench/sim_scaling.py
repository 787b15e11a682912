"""The simulator's scaling claims, each figure a ratio to a reference timed in the same run.

Every timing interleaves our run and its reference within each repeat (the load of a shared machine
changes by the minute) and reports medians of --repeats (default 7) per-repeat figures. Parts:

- w: workload W (bench/sim_throughput.py: 784-256-10 LIF MLP, T=100, Bernoulli(0.1)) at B = 1, 16,
  1000: float and loihi with counts against the plain torch dense loop; targets at B=1 float >= 4x,
  at B=1000 float >= 1.5x and loihi >= 1.0x.
- cnn: ../shared/fixtures/nir-paper/cnn_sinabs.nir lowered with the sinabs preset alone (Sinabs' own
  conventions, as `spikestack run --preset sinabs` lowers it), B=16, T=100, Bernoulli(0.05), float
  with counts, against Sinabs 3.1.3's own forward pass of the same file on the same input
  (bench/peer_sinabs_forward.py in .venv-sinabs: one long-lived process, one timed pass per line,
  on --threads torch threads and, as a busy core slows a 2-thread pass several-fold, on one);
  the outputs' agreement (checked once, printed, never a failure); and the peak RSS of
  `spikestack run` doing the same job in a child process (its ru_maxrss, spawned from a small Python
  so that ours is not inherited; target <= 400 MB), beside that of a Python that imports torch only.
- scaling: 784-H-10 MLPs with W's weight scales, H in 256, 1024, 4096, input activity 1, 5, 10,
  25, 50 %, at --scaling-batch sizes (default 1 16): time per sample-step, synaptic events/s (from
  the counts), peak memory of one run (the kernel's resident high-water mark, reset through
  /proc/self/clear_refs, minus the resident memory before; tracemalloc where that cannot be reset)
  and the ratio to the torch loop of the same configuration (on --threads threads, and to the
  faster of that and the 1-thread loop in each repeat); the claim "1% input at least 4x faster
  than 50% on W at B=1" as a measured ratio, and the compiled engine's dense-path threshold if it
  exposes one.

--quick: T=20, 3 repeats (a smoke run, under 2 minutes). The script stops with one line if
simulate() rejects --engine.

    .venv/bin/python bench/sim_scaling.py [--part w|cnn|scaling|all] [--engine compiled|reference]
                                          [--repeats 7] [--steps 100] [--threads 2] [--scaling-batch 1 16]
    .venv/bin/python bench/sim_scaling.py --quick --engine reference     # smoke run of every part
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sim_throughput import (ENGINES, SIZES, check_engine, interleaved_times, measure_w, print_w,  # bench/, beside this
                            torch_runner, workload)
from spikestack.ir import load_graph, lower_graph, resolve_options
from spikestack.simulators import simulate

ROOT = Path(__file__).resolve().parents[1]
CNN_FILE = ROOT.parent / "shared" / "fixtures" / "nir-paper" / "cnn_sinabs.nir"
PEER = Path(__file__).resolve().parent / "peer_sinabs_forward.py"
HIDDEN = (256, 1024, 4096)
ACTIVITIES = (0.01, 0.05, 0.10, 0.25, 0.50)
CLI_RSS_TARGET_MB = 400.0
ACTIVITY_CLAIM = 4.0  # 1% input at least this much faster per sample-step than 50%, W at B=1


def peak_memory(fn: Callable[[], object]) -> tuple[object, float, str]:
    """fn's result, the peak memory it added (MB) and how that was measured. The kernel's resident
    high-water mark sees every allocator (numpy, torch, numba); freed heap memory is first handed
    back (malloc_trim), or a run that reuses it would seem to need nothing. tracemalloc, the
    fallback, sees only Python's and numpy's allocations."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except (OSError, AttributeError):
        tracemalloc.start()
        try:
            result = fn()
            return result, tracemalloc.get_traced_memory()[1] / 2**20, "tracemalloc peak (Python and numpy only)"
        finally:
            tracemalloc.stop()

    def status(key: str) -> int:  # kB
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

    before = status("VmRSS")
    result = fn()
    return result, (status("VmHWM") - before) / 1024, "peak RSS over the RSS before, after malloc_trim"


def part_w(args: argparse.Namespace) -> None:
    for batch in (1, 16, 1000):
        print_w(measure_w(batch, args.steps, args.repeats, args.threads, args.engine, args.seed))


def sinabs_python() -> Path:
    """.venv-sinabs's python, made or checked by tests/peers/environments.py (loaded by path: tests/
    is no package)."""
    spec = importlib.util.spec_from_file_location("peer_environments", ROOT / "tests" / "peers" / "environments.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ensure("sinabs")


# Spawns the command from a small Python and writes "ru_maxrss exit_code" of it to argv[1]. A child
# spawned straight from this process would not do: exec records the high-water RSS of the memory it
# replaces, and a vfork'd child's is ours (torch and all), so its ru_maxrss would start at our peak.
SPAWNER = ("import os, sys; pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ); "
           "_, status, usage = os.wait4(pid, 0); "
           "open(sys.argv[1], 'w').write(f'{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}')")


def child_peak_rss(command: list[str], directory: Path, name: str) -> tuple[float, float, int, str]:
    """(peak RSS in MB, wall seconds, exit code, last stderr line) of one command, its own ru_maxrss
    from os.wait4 in a small spawner (SPAWNER), so neither we nor the Sinabs peer can inflate it."""
    result = directory / f"{name}.rss"
    with open(directory / f"{name}.err", "w+") as err:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-c", SPAWNER, str(result), *command],
                       stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, check=False)
        seconds = time.perf_counter() - start
        err.seek(0)
        tail = err.read().strip().splitlines()[-1:] or [""]
    kilobytes, code = (int(v) for v in result.read_text().split()) if result.exists() else (0, -1)
    return kilobytes / 1024, seconds, code, tail[0]  # ru_maxrss: kB on Linux


def cli_peak_rss(x_file: Path, directory: Path, engine: str) -> None:
    """`spikestack run` on cnn_sinabs.nir with the sinabs preset, float, counts written (--stats):
    its peak RSS against the target, and, to read it by, that of a Python that imports torch only."""
    command = [sys.executable, "-m", "spikestack", "run", str(CNN_FILE), "--preset", "sinabs", "--input", str(x_file),
               "--out", str(directory / "cli.npz"), "--stats", str(directory / "cli.json"), "--no-progress"]
    helped = subprocess.run(command[:4] + ["--help"], capture_output=True, text=True, cwd=ROOT)
    # pass the engine once the CLI takes it; until then it runs its default
    command += ["--engine", engine] if "--engine" in helped.stdout else []
    rss, seconds, code, tail = child_peak_rss(command, directory, "cli")
    torch_rss = child_peak_rss([sys.executable, "-c", "import torch"], directory, "torch")[0]
    verdict = "met" if rss <= CLI_RSS_TARGET_MB else "NOT met"
    which = f"--engine {engine}" if "--engine" in command else "its default engine"
    print(f"  `spikestack run` on the same job ({which}): peak RSS {rss:,.0f} MB (target <= {CLI_RSS_TARGET_MB:.0f}: "
          f"{verdict}; `python -c 'import torch'` alone: {torch_rss:,.0f} MB), {seconds:.1f} s wall with start-up, "
          f"exit code {code}" + (f" ({tail})" if code else ""))


def part_cnn(args: argparse.Namespace) -> None:
    batch, steps = 16, args.steps
    graph = load_graph(CNN_FILE)
    program = lower_graph(graph, resolve_options(graph.metadata, preset="sinabs"))
    x = (np.random.default_rng(args.seed + 2).random((steps, batch, 2, 34, 34)) < 0.05).astype(np.float32)
    check_engine(program, x, args.engine)
    ours = simulate(program, x, mode="float", count=True, engine=args.engine)
    print(f"cnn_sinabs.nir, preset sinabs, B={batch}, T={steps}, Bernoulli(0.05), float with counts, engine "
          f"{args.engine}: {ours.counts.total('synaptic_events') / batch / 1e6:.2f} M synaptic events per sample")
    with tempfile.TemporaryDirectory(prefix="sim_scaling_") as tmp:
        directory = Path(tmp)
        np.save(directory / "x.npy", x)
        try:
            python = sinabs_python()
        except Exception as error:  # noqa: BLE001 - no peer is a skipped comparison, not a failed script
            print(f"  sinabs: .venv-sinabs unavailable ({type(error).__name__}: {error}); comparison skipped")
        else:
            compare_sinabs(python, directory, program, x, ours.output, args)
        cli_peak_rss(directory / "x.npy", directory, args.engine)


def compare_sinabs(python: Path, directory: Path, program, x: np.ndarray, output: np.ndarray,
                   args: argparse.Namespace) -> None:
    """Ours and Sinabs' forward pass in turn in each repeat; the peer stays up, loaded once."""
    with open(directory / "peer.err", "w") as err:  # the child keeps its own copy of the descriptor
        peer = subprocess.Popen([str(python), str(PEER), str(CNN_FILE), str(directory / "x.npy"),
                                 str(directory / "sinabs.npy"), str(args.threads)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    try:
        if peer.stdout.readline().strip() != "ready":
            peer.wait(timeout=30)
            tail = (directory / "peer.err").read_text().strip().splitlines()[-1:] or ["no message"]
            print(f"  sinabs: the peer did not start (exit {peer.returncode}: {tail[0]}); comparison skipped")
            return
        theirs = np.load(directory / "sinabs.npy")

        def their_pass(threads: int) -> float:
            peer.stdin.write(f"{threads}\n")
            peer.stdin.flush()
            answer = peer.stdout.readline()
            if not answer:  # the peer died mid-run: say why in one line
                tail = (directory / "peer.err").read_text().strip().splitlines()[-1:] or ["no message"]
                raise SystemExit(f"sim_scaling.py: the Sinabs peer stopped: {tail[0]}")
            return float(answer)

        ours_s, theirs_s, theirs1_s = [], [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            simulate(program, x, mode="float", count=True, engine=args.engine)
            ours_s.append(time.perf_counter() - start)
            theirs_s.append(their_pass(args.threads))
            theirs1_s.append(their_pass(1))  # a busy core slows a 2-thread torch pass several-fold
    finally:
        if peer.stdin:
            peer.stdin.close()  # end of input: the peer exits
        peer.wait(timeout=60)
    work = x.shape[0] * x.shape[1]
    ratio = statistics.median(t / o for o, t in zip(ours_s, theirs_s))
    fastest = statistics.median(min(t, t1) / o for o, t, t1 in zip(ours_s, theirs_s, theirs1_s))
    same = theirs.shape == output.shape
    agreement = float((theirs == output).mean()) if same else float("nan")
    print(f"  simulator {work / statistics.median(ours_s):,.0f} sample-steps/s; Sinabs 3.1.3 forward pass "
          f"{work / statistics.median(theirs_s):,.0f} on {args.threads} torch threads, "
          f"{work / statistics.median(theirs1_s):,.0f} on 1 (medians of {args.repeats})")
    print(f"  simulator / Sinabs ({args.threads} threads): {ratio:.2f}; / Sinabs' faster pass of each repeat: "
          f"{fastest:.2f} (medians of the per-repeat ratios)")
    print(f"  outputs: {agreement:.4f} of {output.size:,} (step, sample, neuron) entries agree; spikes ours "
          f"{output.sum():,.0f}, Sinabs {theirs.sum():,.0f}" + ("" if same else f"; shapes differ {theirs.shape}"))


def dense_threshold() -> str:
    """The compiled engine's activity above which it runs a layer dense, if it exposes it: a name
    like DENSE_ABOVE in spikestack.simulators.compiled or its engine module (not DENSE_MACS, a count)."""
    found = []
    for name in ("spikestack.simulators.compiled", "spikestack.simulators.compiled.engine",
                 "spikestack.simulators.compiled.ops"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found += [f"{name.rsplit('.', 1)[1]}.{key} = {getattr(module, key)!r}" for key in dir(module)
                  if key.startswith("DENSE_") and any(word in key for word in ("ABOVE", "THRESHOLD", "ACTIVITY"))]
    return ", ".join(found) or "n/a"


def activity_claim(args: argparse.Namespace) -> None:
    """'1% input at least 4x faster than 50% on W at B=1', timed apart from the table: our runs only,
    interleaved with each other (a torch loop run just before leaves its OpenMP threads spinning on
    the cores for a while, which the table's interleaving charges to our single-thread runs), with
    the engine as it is and with its dense path switched off (the event-driven path alone)."""
    from spikestack.simulators.compiled import ops

    program = workload(args.seed)[0]
    rng = np.random.default_rng(args.seed + 1)
    xs = {p: rng.random((args.steps, 1, SIZES[0])) < p for p in (0.01, 0.5)}
    dense_above = ops.DENSE_ABOVE
    for label, threshold in (("as it is", dense_above), ("event path only", 2.0)):
        ops.DENSE_ABOVE = threshold
        try:
            runs = {p: (lambda x=x: simulate(program, x, mode="float", count=True, engine=args.engine))
                    for p, x in xs.items()}
            for run in runs.values():
                run()
            times = interleaved_times(runs, max(args.repeats, 9))
        finally:
            ops.DENSE_ABOVE = dense_above
        claim = statistics.median(a / b for a, b in zip(times[0.5], times[0.01]))
        per_step = {p: statistics.median(t) / args.steps * 1e6 for p, t in times.items()}
        print(f"claim '1% input at least {ACTIVITY_CLAIM:g}x faster than 50% on W at B=1', engine {label}: "
              f"{per_step[0.01]:.2f} vs {per_step[0.5]:.2f} us/sample-step, {claim:.2f}x "
              f"({'met' if claim >= ACTIVITY_CLAIM else 'NOT met'}; median per-repeat ratio, our runs only)")


def part_scaling(args: argparse.Namespace) -> None:
    steps, how = args.steps, "n/a"
    check_engine(workload(args.seed)[0], np.zeros((2, 1, SIZES[0]), bool), args.engine)  # before the header
    print(f"scaling: 784-H-10 LIF MLPs with W's weight scales, T={steps}, float with counts, engine {args.engine}; "
          f"medians of {args.repeats} interleaved repeats; memory: one more counted run, after them")
    print(f"{'B':>5}{'H':>6}{'input':>7}{'hidden':>8}{'us/sample-step':>16}{'M events/s':>12}{'peak MB':>9}"
          f"{'/ torch':>9}{'/ faster':>10}")
    for batch in args.scaling_batch:
        for hidden in HIDDEN:
            program, w1, w2 = workload(args.seed, (SIZES[0], hidden, SIZES[2]))
            rng = np.random.default_rng(args.seed + 1)
            xs = {p: rng.random((steps, batch, SIZES[0])) < p for p in ACTIVITIES}
            simulate(program, xs[ACTIVITIES[0]][:2], mode="float", count=True, engine=args.engine)  # warm up
            runs: dict[str, Callable[[], object]] = {}
            for p, x in xs.items():  # every activity and its torch reference in one interleaved group
                runs[f"sim {p}"] = lambda x=x: simulate(program, x, mode="float", count=True, engine=args.engine)
                runs[f"torch {p}"] = torch_runner(x, w1, w2, args.threads)
                runs[f"torch1 {p}"] = torch_runner(x, w1, w2, 1)  # a busy core slows 2 threads several-fold
            times = interleaved_times(runs, args.repeats)
            for p, x in xs.items():
                run, memory, how = peak_memory(lambda x=x: simulate(program, x, mode="float", count=True,
                                                                    engine=args.engine))
                ours, theirs, theirs1 = times[f"sim {p}"], times[f"torch {p}"], times[f"torch1 {p}"]
                t = statistics.median(ours)
                ratio = statistics.median(r / s for r, s in zip(theirs, ours))
                fastest = statistics.median(min(r, r1) / s for r, r1, s in zip(theirs, theirs1, ours))
                rate = run.counts.total("spikes_out", "lif1") / (steps * batch * hidden)
                events = run.counts.total("synaptic_events") / t / 1e6
                print(f"{batch:>5}{hidden:>6}{p:>7.0%}{rate:>8.3f}{t / (steps * batch) * 1e6:>16.2f}"
                      f"{events:>12.1f}{memory:>9.1f}{ratio:>9.2f}{fastest:>10.2f}")
    print(f"(peak MB: {how}; / torch: the loop on {args.threads} threads; / faster: the faster of it and the "
          f"1-thread loop in each repeat; both medians of per-repeat ratios)")
    activity_claim(args)
    print(f"dense path takes over above (engine's constant): {dense_threshold()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("w", "cnn", "scaling", "all"), default="all")
    parser.add_argument("--engine", choices=ENGINES, default="compiled", help="the simulator's engine")
    parser.add_argument("--quick", action="store_true", help="T=20, 3 repeats: a smoke run")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="torch threads, ours and the references'")
    parser.add_argument("--scaling-batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 20, 3
    if args.repeats < 1 or args.steps < 1 or min(args.scaling_batch) < 1:
        parser.error("--repeats, --steps and --scaling-batch must be >= 1")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    for name, part in (("w", part_w), ("cnn", part_cnn), ("scaling", part_scaling)):
        if args.part in (name, "all"):
            part(args)
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
