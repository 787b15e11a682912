"""The batch split over threads: every kernel takes a sample range [first, last) and releases the GIL
(`nogil=True`), and `over_samples` runs equal ranges on a pool of Python threads.

Not numba's `parallel=True`: its parfor compilation took 4x longer per kernel (8.9 s against 2.1 s
for the dense kernel; the test suite compiles ~80 signatures on a fresh clone), and its OpenMP team
fixed multiprocessing's start method, which broke Lava in the same process. Samples are independent,
so results do not depend on how many threads run them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

_threads = 1
_pool: ThreadPoolExecutor | None = None


def set_threads(count: int) -> None:
    """Threads for the kernels that follow (the caller's setting: `simulators.run.caller_threads`)."""
    global _threads
    _threads = max(1, int(count))


def thread_count() -> int:
    return _threads


def over_samples(kernel, samples: int, *args) -> None:
    """kernel(*args, first, last) over `samples` samples in equal ranges, one per thread (at most one
    range per sample); the first range runs on the calling thread."""
    global _pool
    workers = min(_threads, samples)
    if workers <= 1:
        kernel(*args, 0, samples)
        return
    if _pool is None or _pool._max_workers < workers - 1:
        _pool = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="spikestack-kernel")
    bounds = [samples * k // workers for k in range(workers + 1)]
    futures = [_pool.submit(kernel, *args, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    kernel(*args, bounds[0], bounds[1])
    for future in futures:
        future.result()
