"""`spikestack sweep`: its arguments and the command (`SWEEP_COMMANDS`), for `spikestack.cli` to register.

This module imports nothing heavy: the defaults come from `spikestack.sweep`'s light package module,
and the sweep itself (torch and every stage) loads when the command runs, so the CLI can build its
parser, for every command, in a fraction of a second. Lists ('8,16,32', 'float,loihi') stay strings
and are parsed by `sweep`, so a bad item is a one-line `OptionsError` (exit 2 in the CLI), the same
from Python and from the shell.
"""

from __future__ import annotations

import argparse

from spikestack.cli.arguments import (COUNT, NATURAL, POSITIVE, Command, add_lowering_arguments, add_progress_argument,
                                      lowering_options, wants_progress)
from spikestack.sweep import (CALIBRATION_SAMPLES, CONNECT_TIMEOUT_S, DEFAULT_CHIPS, DEFAULT_CHUNK_SIZE, DEFAULT_STEPS,
                              MODES)


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `spikestack sweep GRAPH.nir --dataset ... --out DIR`."""
    add_lowering_arguments(parser)
    parser.add_argument("--dataset", required=True, help="digits, fashion-mnist, or a directory of MNIST-layout IDX files")
    parser.add_argument("--steps", default=",".join(map(str, DEFAULT_STEPS)), help="time steps, comma-separated")
    parser.add_argument("--mode", default=",".join(MODES), help="arithmetic: float, loihi or both, comma-separated")
    parser.add_argument("--chip", action="append", help=f"profile name or YAML path (repeat; default {DEFAULT_CHIPS[0]})")
    parser.add_argument("--chunk-size", type=COUNT, default=DEFAULT_CHUNK_SIZE, help="samples per task")
    parser.add_argument("--limit", type=COUNT, help="use the first N test samples")
    parser.add_argument("--seed", type=NATURAL, default=0, help="seed of the rate coding")
    parser.add_argument("--scheduler", default="none", help="none (in process), local (a LocalCluster), or an address tcp://host:port")
    parser.add_argument("--workers", type=COUNT, help="worker processes of --scheduler local (default: one per core)")
    parser.add_argument("--connect-timeout", type=POSITIVE, default=CONNECT_TIMEOUT_S,
                        help="seconds to reach a scheduler address and hear its handshake")
    parser.add_argument("--dt-seconds", type=POSITIVE,
                        help="seconds per step (default: the lowering dt read as seconds)")
    parser.add_argument("--calibration-samples", type=COUNT, default=CALIBRATION_SAMPLES,
                        help="training images whose float run sets Loihi's headroom")
    add_progress_argument(parser)
    parser.add_argument("--out", default="out/sweep", help="directory for sweep.json, sweep.csv and plots")


def run_sweep_command(args: argparse.Namespace) -> int:
    """Run `sweep` with the parsed arguments, print the table; a SpikestackError propagates."""
    from spikestack.sweep.job import sweep

    result = sweep(args.graph, args.dataset, steps=args.steps, modes=args.mode, chips=args.chip or DEFAULT_CHIPS,
                   chunk_size=args.chunk_size, scheduler=args.scheduler, workers=args.workers, out_dir=args.out,
                   limit=args.limit, seed=args.seed, dt_seconds=args.dt_seconds,
                   calibration_samples=args.calibration_samples, connect_timeout=args.connect_timeout,
                   progress=wants_progress(args), **lowering_options(args))
    print(result.table())
    print(f"wrote {', '.join(result.files.values())}")
    return 0


SWEEP_COMMANDS: dict[str, Command] = {
    "sweep": Command("accuracy, energy and latency over a dataset, on Dask", add_sweep_arguments, run_sweep_command),
}
