"""Which simulator engine runs: "compiled" (numba kernels, the default) or "reference" (the torch
executor the compiled one is tested against). docs/simulator.md compares them.

`simulate(engine=None)` takes `default_engine()`: the value `engine_choice` set (the CLI's global
`--engine` option), else the environment variable SPIKESTACK_ENGINE (which `engine_choice` sets too,
so Dask workers and other child processes inherit it), else "compiled". A leaf module: the CLI
reads it without importing numba or torch.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from spikestack.errors import OptionsError

ENGINES = ("compiled", "reference")
ENV_VAR = "SPIKESTACK_ENGINE"


def check_engine(name: str) -> str:
    if name not in ENGINES:
        raise OptionsError(f"engine must be one of {', '.join(ENGINES)}; got {name!r}")
    return name


def default_engine() -> str:
    return check_engine(os.environ.get(ENV_VAR) or ENGINES[0])


@contextmanager
def engine_choice(name: str | None) -> Iterator[None]:
    """Within the block, simulations run on engine `name` (None: leave the default as it is)."""
    if name is None:
        yield
        return
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = check_engine(name)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = before
