"""The `spikestack` command: parse arguments, call one library function, print.

Every `SpikestackError`, argparse error (`arguments.Parser`) and MemoryError becomes one line on
stderr and exit code 2; any other exception is a bug of ours: one 'internal error' line and exit 1
(SPIKESTACK_DEBUG=1 shows the traceback). Nothing else is decided here.
Each command's work is a public function (`spikestack.pipeline` or a stage), callable from Python.
The commands live in modules of their own: `graph` (info, run, export, map, energy, deploy, demo,
chips), `sweep` and `train` (train, convert); `arguments` holds the parser class and option types.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from typing import Sequence

from spikestack.cli.arguments import Command, Parser
from spikestack.cli.graph import GRAPH_COMMANDS
from spikestack.cli.sweep import SWEEP_COMMANDS
from spikestack.cli.train import TRAIN_COMMANDS
from spikestack.errors import SpikestackError, Terminated
from spikestack.engines import ENGINES, engine_choice
from spikestack.memory import memory_limit
from spikestack.signals import StopSignals

# name -> Command, in the order `spikestack --help` lists them
COMPILE_NOTE_S = 1.0
COMMANDS: dict[str, Command] = {**GRAPH_COMMANDS, **SWEEP_COMMANDS, **TRAIN_COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    """`spikestack`'s parser: one sub-parser per command, in COMMANDS' order."""
    parser = Parser(prog="spikestack", description=__doc__.splitlines()[0])  # its sub-parsers are Parsers too
    sub = parser.add_subparsers(dest="command", required=True)
    for name, entry in COMMANDS.items():
        entry.add_arguments(sub.add_parser(name, help=entry.help))
    _add_global(parser, None)
    return parser


def _add_global(parser: argparse.ArgumentParser, default: str | None) -> None:
    """--max-memory and --engine on `parser` and on every sub-parser below it (train's methods too),
    so they may go before or after a command's name. Sub-parsers default to SUPPRESS: a value given
    before the name would otherwise be overwritten by theirs."""
    parser.add_argument("--max-memory", metavar="SIZE", default=default,
                        help="memory that what a file declares may take, e.g. 512M or 2G "
                             "(default: 80%% of the available memory)")
    parser.add_argument("--engine", choices=ENGINES, default=default,
                        help="simulator engine: compiled (numba kernels; the first run compiles them, "
                             "later runs load them from the disk cache) or reference (the torch executor) "
                             "(default: compiled)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():
                _add_global(sub, argparse.SUPPRESS)


def compile_seconds() -> float:
    """Seconds the compiled engine has spent compiling kernels in this process (0 if it never ran)."""
    compiled = sys.modules.get("spikestack.simulators.compiled_run")  # imported only if it ran
    return sum(compiled.COMPILE_LOG) if compiled is not None else 0.0


def report_compile_time(command: str, seconds: float) -> None:
    """One line on stderr when the command compiled the engine's kernels for a while (a first run, or
    a new kind of network); loading them from the disk cache takes well under COMPILE_NOTE_S."""
    if seconds >= COMPILE_NOTE_S:
        print(f"spikestack {command}: note: the compiled engine compiled its kernels in {seconds:.1f} s "
              f"(cached on disk: later runs skip this)", file=sys.stderr)


def preset_omits(preset: str | None) -> str:
    """The preset's line on what its exporter's files cannot tell us ("" for none). Imported here, on
    use: the commands that take --preset load `spikestack.ir` anyway."""
    if preset is None:
        return ""
    from spikestack.ir.presets import PRESETS

    return PRESETS[preset].file_omits


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line (default: sys.argv[1:]) and return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a one-line argparse error (2): an exit code, as for the rest
        return exc.code if isinstance(exc.code, int) else 0
    warnings.filterwarnings("ignore")  # torch/nirtorch deprecation noise is not the user's business
    try:
        # SIGTERM/SIGHUP raise like Ctrl-C, so every command's cleanup (temporary files, Lava) runs.
        compiled_before = compile_seconds()
        with StopSignals(), memory_limit(args.max_memory), engine_choice(args.engine):
            code = COMMANDS[args.command].run(args)  # a bad --max-memory is an OptionsError: one line, exit 2
        report_compile_time(args.command, compile_seconds() - compiled_before)
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
