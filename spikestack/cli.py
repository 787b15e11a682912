"""The `spikestack` command: parse arguments, call one library function, print.

Every `SpikestackError`, argparse error (`arguments.Parser`) and MemoryError becomes one line on
stderr and exit code 2; any other exception is a bug of ours: one 'internal error' line and exit 1
(SPIKESTACK_DEBUG=1 shows the traceback). Nothing else is decided here.
Each command's work is a public function (`spikestack.pipeline` or a stage), callable from Python.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import warnings
from typing import Callable, Sequence

from spikestack.arguments import (COUNT, NATURAL, POSITIVE, Parser, add_lowering_arguments, add_progress_argument,
                                  lowering_options, wants_progress)
from spikestack.errors import SpikestackError, Terminated
from spikestack.memory import memory_limit
from spikestack.signals import StopSignals

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str):
    def wrap(pair):
        COMMANDS[name] = (help, *pair)
        return pair

    return wrap


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("graph", help="a .nir file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _info(args: argparse.Namespace) -> int:
    from spikestack.pipeline import info

    description = info(args.graph)
    if args.json:
        print(json.dumps(description, indent=2))
    else:
        from spikestack.ir.info import format_description

        print(format_description(description))
    return 0


command("info", "describe a NIR graph: nodes, shapes, sizes, recurrence")((_info_args, _info))


def _run_args(p: argparse.ArgumentParser) -> None:
    add_lowering_arguments(p)
    p.add_argument("--input", required=True, help="time-major input (T, B, *input_shape) as .npy")
    p.add_argument("--backend", choices=["sim", "lava"], default="sim")
    p.add_argument("--mode", choices=["float", "loihi", "fixed"], default="float")
    p.add_argument("--record", nargs="*", default=[], metavar="NODE", help="nodes whose state to record")
    p.add_argument("--out", required=True, help="outputs and recordings (.npz)")
    p.add_argument("--stats", help="operation counts per node and step (.json)")
    add_progress_argument(p)


def _run(args: argparse.Namespace) -> int:
    from spikestack.pipeline import check_run_paths, load_input, load_program, run_program, save_run

    check_run_paths(args.graph, args.input, args.out, args.stats)  # before anything runs: a refusal writes nothing
    program = load_program(args.graph, **lowering_options(args))
    run = run_program(program, load_input(args.input), args.backend, args.mode, tuple(args.record),
                      progress=wants_progress(args))
    save_run(run, args.out, args.stats)
    counts = run.counts
    summary = f", {counts.total('synaptic_events')} synaptic events" if counts is not None else ""
    print(f"ran {args.graph} on {run.backend} ({run.mode}){summary}; wrote {args.out}")
    return 0


command("run", "simulate a graph (or run it on Lava) on a .npy input")((_run_args, _run))


def _export_args(p: argparse.ArgumentParser) -> None:
    add_lowering_arguments(p)
    p.add_argument("--for", dest="target", required=True, choices=["snntorch", "norse", "sinabs", "rockpool"],
                   help="the library whose own importer and runtime must run the file as we do")
    p.add_argument("--out", required=True, help="the .nir file to write")


def _export(args: argparse.Namespace) -> int:
    from spikestack.pipeline import export_for

    export_for(args.graph, args.target, args.out, **lowering_options(args))
    print(f"wrote {args.out}: {args.graph} in the conventions of {args.target}'s importer")
    return 0


command("export", "rewrite a graph in snnTorch's, Norse's, Sinabs' or Rockpool's NIR conventions")((_export_args, _export))


def _map_args(p: argparse.ArgumentParser) -> None:
    add_lowering_arguments(p)
    p.add_argument("--chip", default="loihi2", help="profile name or YAML path")
    p.add_argument("--weight-bits", type=COUNT, help="bits per synapse (default: the chip's)")
    p.add_argument("--json", action="store_true")


def _map(args: argparse.Namespace) -> int:
    from spikestack.pipeline import map_graph

    placement = map_graph(args.graph, args.chip, weight_bits=args.weight_bits, **lowering_options(args))
    if args.json:
        print(json.dumps(placement, indent=2))
        return 0
    print(f"{placement['chip']}: {placement['cores_used']} cores on a {placement['grid'][0]}x{placement['grid'][1]} mesh")
    for core in placement["cores"]:
        print(f"  core {core['index']:>3} {core['layer']:<12} neurons {core['neurons']:>6} synapses {core['synapses']:>8} "
              f"in-axons {core['input_axons']:>5} out-axons {core['output_axons']:>5}")
    return 0


command("map", "place a graph on a chip's cores and report the load")((_map_args, _map))


def _energy_args(p: argparse.ArgumentParser) -> None:
    add_lowering_arguments(p)
    p.add_argument("--input", required=True, help="time-major input (T, B, *input_shape) as .npy")
    p.add_argument("--chip", action="append", required=True, help="profile name or YAML path (repeat)")
    p.add_argument("--mode", choices=["float", "loihi"], default="float")
    p.add_argument("--dt-seconds", type=POSITIVE, help="seconds per step (default: dt, when in seconds)")
    p.add_argument("--out", default="out/energy")


def _energy(args: argparse.Namespace) -> int:
    from spikestack.energy.report import format_markdown
    from spikestack.pipeline import energy, load_input

    report = energy(args.graph, load_input(args.input), args.chip, args.out, mode=args.mode,
                    dt_seconds=args.dt_seconds, input_path=args.input, **lowering_options(args))
    print(format_markdown(report).split("\n## ")[0])
    print(f"wrote {args.out}/energy.json, energy.md and plots")
    return 0


command("energy", "energy and latency per inference on chips, from simulated counts")((_energy_args, _energy))


def _deploy_args(p: argparse.ArgumentParser) -> None:
    add_lowering_arguments(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="time-major input (T, B, *input_shape) as .npy")
    source.add_argument("--dataset", help="digits, fashion-mnist or a directory of MNIST-layout IDX files: "
                                          "its test set, rate-coded, scored per backend")
    p.add_argument("--steps", type=COUNT, help="time steps per dataset sample (default 32)")
    p.add_argument("--limit", type=COUNT, help="first N samples only")
    p.add_argument("--chip", action="append", help="profile name or YAML path (repeat; default: every shipped chip)")
    p.add_argument("--backend", choices=["sim", "lava", "both"], default="both")
    p.add_argument("--samples", type=COUNT, default=3, help="samples to run on Lava (default 3)")
    p.add_argument("--dt-seconds", type=POSITIVE, help="seconds per step (default: dt, when in seconds)")
    p.add_argument("--seed", type=NATURAL, default=0, help="dataset split and rate-coding seed")
    p.add_argument("--out", required=True, help="directory for report.html, report.md, report.json")
    add_progress_argument(p)


def _deploy(args: argparse.Namespace) -> int:
    from spikestack.pipeline import deploy, load_input

    x = load_input(args.input) if args.input else None
    deploy(args.graph, args.out, x=x, dataset=args.dataset, steps=args.steps, limit=args.limit, chips=args.chip,
           backend=args.backend, samples=args.samples, dt_seconds=args.dt_seconds, seed=args.seed, echo=print,
           input_path=args.input, progress=wants_progress(args), **lowering_options(args))
    return 0


command("deploy", "validate, map, simulate, run on Lava, compare, estimate energy per chip: one report")(
    (_deploy_args, _deploy))


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out/demo", help="directory for the model and reports")
    p.add_argument("--seed", type=NATURAL, default=0)
    add_progress_argument(p)


def _demo(args: argparse.Namespace) -> int:
    from spikestack.pipeline import demo

    demo(out_dir=args.out, seed=args.seed, echo=print, progress=wants_progress(args))
    return 0


command("demo", "train a small SNN on digits, export it to NIR and deploy it (the same report)")((_demo_args, _demo))


def _chips_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _chips(args: argparse.Namespace) -> int:
    from spikestack.pipeline import chips

    rows = chips()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        flag = " (estimated)" if row["estimated"] else ""
        print(f"{row['name']:<14} {row['kind']:<4} {row['description']}{flag}")
    return 0


command("chips", "list the shipped chip profiles")((_chips_args, _chips))


from spikestack.sweep import add_sweep_arguments, run_sweep_command  # noqa: E402  (light: heavy parts load on use)

command("sweep", "accuracy, energy and latency over a dataset, on Dask")((add_sweep_arguments, run_sweep_command))

from spikestack.cli_train import add_convert_arguments, add_train_arguments, run_convert, run_train  # noqa: E402

command("train", "train an SNN (s3nn, noise-t1, hnsg, spide) or a ResNet ANN; export it")((add_train_arguments, run_train))
command("convert", "convert a trained ResNet ANN (.pt) to an SNN with tuned thresholds; export it")(
    (add_convert_arguments, run_convert))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="spikestack", description=__doc__.splitlines()[0])  # its sub-parsers are Parsers too
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text))
    _add_max_memory(parser, None)
    return parser


def _add_max_memory(parser: argparse.ArgumentParser, default) -> None:
    """--max-memory on `parser` and on every sub-parser below it (train's methods too), so it may go
    before or after a command's name. Sub-parsers default to SUPPRESS: a value given before the name
    would otherwise be overwritten by theirs."""
    parser.add_argument("--max-memory", metavar="SIZE", default=default,
                        help="memory that what a file declares may take, e.g. 512M or 2G "
                             "(default: 80%% of the available memory)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():
                _add_max_memory(sub, argparse.SUPPRESS)


def preset_omits(preset: str | None) -> str:
    """The preset's line on what its exporter's files cannot tell us ("" for none). Imported here, on
    use: the commands that take --preset load `spikestack.ir` anyway."""
    if preset is None:
        return ""
    from spikestack.ir.presets import PRESETS

    return PRESETS[preset].file_omits


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a one-line argparse error (2): an exit code, as for the rest
        return exc.code if isinstance(exc.code, int) else 0
    warnings.filterwarnings("ignore")  # torch/nirtorch deprecation noise is not the user's business
    try:
        # SIGTERM/SIGHUP raise like Ctrl-C, so every command's cleanup (temporary files, Lava) runs.
        with StopSignals(), memory_limit(args.max_memory):  # a bad size is an OptionsError: one line, exit 2
            code = COMMANDS[args.command][2](args)
        omits = preset_omits(getattr(args, "preset", None))
        if omits and code == 0:  # what the exporter's files cannot tell us; an error stays one line
            print(f"spikestack {args.command}: note: {omits}", file=sys.stderr)
        return code
    except SpikestackError as exc:
        print(f"spikestack {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error of ours
        sys.stderr.close()
        return 0
    except Terminated as exc:  # SIGTERM or SIGHUP: the `finally` blocks have cleaned up (Lava, temporary files)
        print(f"spikestack {args.command}: terminated ({signal.Signals(exc.signum).name})", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(f"spikestack {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:  # an allocation no size check foresaw: the user's input was too big for this machine
        print(f"spikestack {args.command}: error: out of memory while running '{args.command}'; "
              "use --max-memory to refuse such inputs up front, or a smaller input", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug of ours, not the user's: one line and exit 1, never 2
        if os.environ.get("SPIKESTACK_DEBUG", "") not in ("", "0"):
            raise
        what = " ".join(str(exc).split())[:300]
        print(f"spikestack {args.command}: internal error: {type(exc).__name__}: {what} "
              "(set SPIKESTACK_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
