"""Checks of numeric options: a count, a seed, a finite number in range; one `OptionsError` naming the option.

A leaf (it imports only `errors`), so the library functions that consume an option and the CLI's
argparse types (`spikestack.arguments`) apply the same rule: `number_problem` says what is wrong,
`check_number` raises it for a Python caller, the argparse type turns it into argparse's one line.
NaN and infinity are never a meaningful time step, learning rate or fraction: every float is finite.
"""

from __future__ import annotations

import math
import numbers

from spikestack.errors import OptionsError


def _bounds(integer: bool, above: float | None, at_least: float | None, at_most: float | None) -> str:
    """What the value must be, in words: 'an integer >= 1', 'a finite number > 0 and <= 1'."""
    parts = [f"> {above:g}" if above is not None else "", f">= {at_least:g}" if at_least is not None else "",
             f"<= {at_most:g}" if at_most is not None else ""]
    kind = "an integer" if integer else "a finite number"
    return " ".join([kind, " and ".join(p for p in parts if p)]).strip()


def number_problem(value: object, *, integer: bool = False, above: float | None = None,
                   at_least: float | None = None, at_most: float | None = None) -> str | None:
    """None when `value` is a number meeting the bounds; else what is wrong ('must be an integer >= 1, got 0')."""
    want = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, want) and not isinstance(value, bool)
    if ok and not integer:
        ok = math.isfinite(value)
    if ok:
        ok = ((above is None or value > above) and (at_least is None or value >= at_least)
              and (at_most is None or value <= at_most))
    return None if ok else f"must be {_bounds(integer, above, at_least, at_most)}, got {value!r}"


def check_number(value, name: str, *, integer: bool = False, above: float | None = None,
                 at_least: float | None = None, at_most: float | None = None, required: bool = False):
    """`value` unchanged when it meets the bounds (None, 'not given', passes unless `required`); else an
    OptionsError '<name> must be ..., got ...'."""
    if value is None and not required:
        return None
    problem = number_problem(value, integer=integer, above=above, at_least=at_least, at_most=at_most)
    if problem is not None:
        raise OptionsError(f"{name} {problem}")
    return value


def check_count(value, name: str, minimum: int = 1, *, required: bool = False):
    """An integer >= minimum (1: a number of steps, samples, epochs...; 0: a seed, 'none' allowed)."""
    return check_number(value, name, integer=True, at_least=minimum, required=required)


def check_positive(value, name: str, *, required: bool = False):
    """A finite number > 0 (a time step, seconds per step, a learning rate)."""
    return check_number(value, name, above=0, required=required)
