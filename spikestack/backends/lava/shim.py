"""The one module that imports `lava` (like nengo-loihi's nxsdk_shim): everything else asks `HAS_LAVA`.

lava-nc 0.10 installs only on Python 3.10 and fails to import on 3.11 with errors that are not all
ImportErrors, so any exception here means "no Lava" and is kept, as text, for the error message.
Only the child process that runs Lava imports this module (worker.py checks `HAS_LAVA` before it
imports build.py and processes.py, which use these names); `import spikestack.backends.lava` never does.
"""

from __future__ import annotations

LAVA_IMPORT_ERROR = ""

try:
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.model.py.ports import PyInPort, PyOutPort, PyRefPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.ports.ports import InPort, OutPort, RefPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.process.variable import Var
    from lava.magma.core.resources import CPU
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense, DelayDense
    from lava.proc.io.sink import RingBuffer as SinkRingBuffer
    from lava.proc.io.source import RingBuffer as SourceRingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.sparse.process import DelaySparse, Sparse

    HAS_LAVA = True
except Exception as exc:  # noqa: BLE001 - on 3.11 lava breaks with TypeErrors, not only ImportErrors
    HAS_LAVA = False
    LAVA_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
