"""Loihi 2's deployment format, lava-dl netx HDF5: plan (`layers.py`), write (`write.py`), read
(`read.py`), and lava-dl's own run of a file in a side environment (`verify.py`, `lava_dl_run.py`).
No module here imports lava-dl; `lava_dl_run.py` is a script run by another Python."""

from spikestack.backends.netx.layers import NetxLayer, NetxNeuron, plan_layers
from spikestack.backends.netx.read import read_netx
from spikestack.backends.netx.verify import find_lava_dl, run_lava_dl
from spikestack.backends.netx.write import write_netx

__all__ = ["NetxLayer", "NetxNeuron", "find_lava_dl", "plan_layers", "read_netx", "run_lava_dl", "write_netx"]
