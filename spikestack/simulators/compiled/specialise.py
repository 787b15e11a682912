"""Kernels specialised on compile-time constants, generated as source and cached on disk.

A neuron kernel runs 3-4x faster when its options are literal constants in its source than when
they arrive as values (measured: numba folds literals, not a tuple of flags, nor an overload's
closure). So `specialised(template, constants)` writes the template with the constants filled in
to a module in the kernel cache directory, imports it and returns its `kernel`; numba's own disk
cache (`cache=True`) then keeps the compiled code beside that module. The module's name carries a
digest of the template and of every source file the kernel compiles (`DEPENDENCIES`), so editing
the dynamics yields a new module: a cached kernel is never stale.

The directory: $SPIKESTACK_KERNEL_CACHE, else $XDG_CACHE_HOME/spikestack/kernels (~/.cache/...),
else the system's temporary directory if that one cannot be written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from spikestack.ir import dynamics, fixed

PACKAGE = Path(__file__).resolve().parent
DEPENDENCIES = (Path(dynamics.__file__), Path(fixed.__file__), PACKAGE / "scalars.py", PACKAGE / "events.py",
                PACKAGE / "specialise.py")
_LOADED: dict[str, object] = {}


def kernel_cache() -> Path:
    """Where generated kernels and numba's compiled code for them live (made on first use)."""
    configured = os.environ.get("SPIKESTACK_KERNEL_CACHE")
    base = Path(configured) if configured else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for where in ((base,) if configured else (base / "spikestack" / "kernels",)) + (
            Path(tempfile.gettempdir()) / f"spikestack-kernels-{os.getuid()}",):
        try:
            where.mkdir(parents=True, exist_ok=True)
            if os.access(where, os.W_OK):
                return where
        except OSError:
            continue
    raise OSError("no writable directory for compiled kernels (set SPIKESTACK_KERNEL_CACHE)")


def _digest(template: str) -> str:
    h = hashlib.sha256(template.encode())
    for path in DEPENDENCIES:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def specialised(name: str, template: str, **constants) -> object:
    """`kernel` of `template` with each {name} replaced by repr(constant); one module per name,
    constants and digest, written once and imported once per process."""
    source = template.format(**{k: repr(v) for k, v in constants.items()})
    module_name = f"spikestack_kernel_{name}_{_digest(source)}"
    if module_name in _LOADED:
        return _LOADED[module_name]
    path = kernel_cache() / f"{module_name}.py"
    if not path.exists() or path.read_text() != source:
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(source)
        os.replace(partial, path)  # atomic: concurrent processes see the whole file or none
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    _LOADED[module_name] = module.kernel
    return module.kernel


def loaded() -> list:
    """The specialised kernels this process has loaded."""
    return list(_LOADED.values())
