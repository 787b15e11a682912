"""The error hierarchy. Every problem with a user's input is one of these, carrying one line of text.

The CLI turns any `SpikestackError` into that line on stderr and exit code 2; library users catch
the class they care about. Messages name the node (or file, field) and the problem.
"""

from __future__ import annotations


class SpikestackError(Exception):
    """Base class: a problem with the user's input or request, explained in one line."""

    def __init__(self, message: str, *, node: str | None = None):
        self.node = node
        text = f"node '{node}': {message}" if node is not None else message
        super().__init__(" ".join(str(text).split()))  # one line, whatever the cause said


class GraphFileError(SpikestackError):
    """The file is missing, unreadable, truncated or not a NIR graph."""


class GraphValidationError(SpikestackError):
    """The graph is readable but wrong: bad parameters, shapes, edges or topology."""


class UnsupportedError(SpikestackError):
    """A primitive, option or feature that the chosen stage does not support."""


class OptionsError(SpikestackError):
    """Lowering or run options that are missing, contradictory or out of range."""


class BackendUnavailableError(SpikestackError):
    """A backend that cannot run here (e.g. Lava without Python 3.10)."""


class ChipError(SpikestackError):
    """A chip profile that is malformed, unknown, or a network that does not fit the chip."""


class DataError(SpikestackError):
    """A dataset path or input array that is missing or has the wrong shape."""


class OutputPathError(SpikestackError):
    """An output path that is an input, or cannot be written (a directory, under a file, unwritable)."""


class ResourceLimitError(SpikestackError):
    """What a file declares (or an option asks for) would take more memory than the budget (--max-memory)."""


class Terminated(KeyboardInterrupt):
    """A stop signal other than Ctrl-C (SIGTERM, SIGHUP) raised where it arrived, so that `finally`
    blocks clean up as they do for Ctrl-C (spikestack/signals.py). Not a `SpikestackError`: nothing
    is wrong with the input; the CLI exits with 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
