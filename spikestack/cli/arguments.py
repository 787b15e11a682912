"""The CLI's argument parser, its `Command` entries, and the lowering options as command-line arguments.

A leaf that imports nothing heavy (only the `checks` leaf), so the command modules (`graph`, `train`,
`sweep`) can build their parsers in a fraction of a second. `Parser` is the one parser class of every
command and sub-command: an argparse error is one line (`spikestack run: error: ...`, exit 2), like
a `SpikestackError`, and a negative number is a value. The option types (`COUNT`, `POSITIVE`...) reject
what cannot be meant (NaN, inf, 0 steps) at once, naming the option; the library functions that
consume a value check it again with the same rule (`spikestack.checks`), for Python callers. The
lowering names mirror `ir.LoweringOptions`; a test holds `PRESETS` equal to `ir.PRESETS`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable, NoReturn

from spikestack.checks import number_problem

PRESETS = ("norse", "norse@1.0", "snntorch", "sinabs", "rockpool", "netx", "spikestack")
STATS_FORMATS = ("spikestack", "neurobench")  # pipeline.stages.STATS_FORMATS, spelt out so --help stays fast
_PROG = "_spikestack_prog"  # namespace attribute: the prog of the deepest parser that ran


@dataclass(frozen=True)
class Command:
    """One sub-command of `spikestack`: its line in `--help`, what adds its arguments to its parser,
    and what runs it on the parsed arguments (returning the exit code)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors naming the (sub-)command, and negative numbers as values.

    argparse reads '-1e-4', '-inf' and '-.5e3' as unknown options ('--dt: expected one argument'):
    its negative-number pattern misses exponents and words, and it is switched off altogether in a
    parser with an option that looks like a number. Here any token that parses as a float and is not
    an option of this parser is a value, and the option's type then says whether it makes sense.
    `add_subparsers` hands this class on to every sub-parser (argparse's default: type(self)).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")

    def _parse_optional(self, arg_string: str):
        if arg_string not in self._option_string_actions and arg_string[:1] == "-" and _is_number(arg_string):
            return None  # a positional: the value of the option before it, or an argument
        return super()._parse_optional(arg_string)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if not hasattr(namespace, _PROG):  # a sub-parser ran first and set its own: the deepest wins
            setattr(namespace, _PROG, self.prog)
        return namespace, extras

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:
        """As argparse's, but arguments left over are refused by the sub-command that left them
        ('spikestack run: error: unrecognized arguments: --foo'), not by the top parser."""
        namespace, extras = self.parse_known_args(args, namespace)
        prog = vars(namespace).pop(_PROG, self.prog)
        if extras:
            message = f"unrecognized arguments: {' '.join(extras)}"
            self.exit(2, f"{prog}: error: {' '.join(message.split())} (see {prog} --help)\n")
        return namespace


def number(*, integer: bool = False, above: float | None = None, at_least: float | None = None,
           at_most: float | None = None) -> Callable[[str], float | int]:
    """An argparse `type`: the text as int or float, refused (one line naming the option) unless it
    meets `spikestack.checks.number_problem`'s bounds; a float must be finite."""
    kind = "an integer" if integer else "a number"

    def parse(text: str) -> float | int:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        problem = number_problem(value, integer=integer, above=above, at_least=at_least, at_most=at_most)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


COUNT = number(integer=True, at_least=1)  # steps, samples, epochs, sizes: 0 means nothing to do
NATURAL = number(integer=True, at_least=0)  # seeds, and counts where 0 means 'none'
POSITIVE = number(above=0)  # time steps, seconds, learning rates
FINITE = number()  # any finite float: its range is the library's to say


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """--progress/--no-progress: tqdm bars on stderr; by default only when stderr is a terminal, so a
    log file or a pipe gets no carriage-return litter."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="tqdm progress bars (default: when stderr is a terminal)")


def wants_progress(args: argparse.Namespace) -> bool:
    """The parsed --progress, or whether stderr is a terminal when it was not given."""
    return sys.stderr.isatty() if args.progress is None else args.progress


def add_lowering_arguments(parser: argparse.ArgumentParser) -> None:
    """GRAPH plus --preset, --dt, --reset, --reset-timing, --initial-potential, --integration,
    --threshold, --spikes-per-step, --fixed-point."""
    parser.add_argument("graph", help="a .nir file")
    parser.add_argument("--preset", choices=PRESETS, help="exporter convention filling in dt, reset and the rest")
    parser.add_argument("--dt", type=POSITIVE, help="time step in the graph's time unit (NIR carries none)")
    parser.add_argument("--reset", choices=["zero", "subtract"])
    parser.add_argument("--reset-timing", choices=["immediate", "delayed"])
    parser.add_argument("--initial-potential", type=FINITE, help="initial v as a multiple of the threshold")
    parser.add_argument("--integration", choices=["euler", "exact"])
    parser.add_argument("--threshold", choices=[">", ">="], help="fire at v > threshold (NIR) or v >= threshold")
    parser.add_argument("--spikes-per-step", choices=["one", "many"],
                        help="'many': floor(v / threshold) spikes in one step (Sinabs' MultiSpike, Rockpool)")
    parser.add_argument("--fixed-point", choices=["loihi", "netx"],
                        help="the integers loihi mode runs: Lava's processes (loihi) or what a netx file holds (netx)")


def lowering_options(args: argparse.Namespace) -> dict:
    """The parsed lowering arguments as keyword arguments (None where not given)."""
    return dict(preset=args.preset, dt=args.dt, reset=args.reset, reset_timing=args.reset_timing,
                initial_potential=args.initial_potential, integration=args.integration, threshold=args.threshold,
                spikes_per_step=args.spikes_per_step, fixed_point=args.fixed_point)
