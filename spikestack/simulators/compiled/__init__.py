"""The compiled engine: numba kernels for the simulator's float and loihi modes (docs/simulator.md)."""
