"""Where a sweep's tasks run: in this process, on a local Dask cluster, or on an existing scheduler.

`none` calls the tasks one after another here (small runs, tests, debugging). `local` starts a
`distributed.LocalCluster` of worker processes with one thread each: the simulator is single-threaded
inside a task, and processes sidestep the GIL. An address (tcp://host:8786) connects to a scheduler
someone started (`dask scheduler`, dask-jobqueue's SLURMCluster, ...); its workers must see the same
paths and have spikestack installed.

Losing a worker loses nothing: the scheduler reschedules the tasks it held (up to
`distributed.scheduler.allowed-failures` deaths per task), and each task is also submitted with
`retries=2`, so a task that raises on a sick worker runs again elsewhere before the sweep gives up.
Results are put back in task order, never in completion order, so the reduction is the same
whichever worker finished first.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

from tqdm import tqdm

from spikestack.errors import BackendUnavailableError
from spikestack.sweep.task import ChunkResult, ChunkTask, run_chunk

if TYPE_CHECKING:  # distributed loads only when a cluster is asked for
    from distributed import Client, LocalCluster

RETRIES = 2
# Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in every worker it spawns, to hand freed memory back
# to the OS. Setting it also turns off glibc's adaptive mmap threshold, so the simulator's per-step
# arrays (hundreds of kB each) are mapped and unmapped afresh every step: the same task ran 1.5-2x
# slower in such a worker than in process (measured, interleaved). A task frees all it allocates,
# so a worker's memory stays at one task's peak without the trimming. A value the user exported
# into the environment still wins (the nanny copies os.environ).
WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
Echo = Callable[[str], None]
Progress = Callable[[int, int], None]


def default_workers() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _dashboard(client: Client, local: bool) -> str:
    """The dashboard's address, or why there is none. Without bokeh a scheduler still serves the
    address, but only with a page asking for bokeh: say so for a cluster we started here."""
    if "dashboard" not in client.scheduler_info().get("services", {}):
        return "none (the scheduler serves no dashboard)"
    if local and importlib.util.find_spec("bokeh") is None:
        return f"none ({client.dashboard_link} needs bokeh>=3.1 installed)"
    return client.dashboard_link


def local_cluster(workers: int, **kwargs) -> LocalCluster:
    """A LocalCluster of `workers` processes with one thread each, spawned with WORKER_CONFIG."""
    import dask
    from distributed import LocalCluster

    with dask.config.set(WORKER_CONFIG):  # read by each Nanny as it is created, and kept for restarts
        return LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, **kwargs)


@contextmanager
def open_client(scheduler: str, workers: int | None, timeout: float, echo: Echo) -> Iterator[Client | None]:
    """A `distributed.Client` for the scheduler (None for 'none'); closes what it started."""
    if scheduler == "none":
        yield None
        return
    from distributed import Client

    cluster = client = None
    try:
        if scheduler == "local":
            n = workers or default_workers()
            cluster = local_cluster(n, dashboard_address=":0")
            client = Client(cluster)
            echo(f"local cluster: {n} worker processes, 1 thread each")
        else:
            probe_scheduler(scheduler, timeout)
            try:
                client = Client(scheduler, timeout=timeout)
            except Exception as exc:  # it answered the handshake, then failed: not a scheduler we can use
                raise _unreachable(scheduler, timeout, exc) from None
            echo(f"connected to {scheduler}: {len(client.scheduler_info().get('workers', {}))} workers")
        echo(f"dashboard: {_dashboard(client, cluster is not None)}")
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _unreachable(address: str, timeout: float, exc: BaseException) -> BackendUnavailableError:
    if isinstance(exc, asyncio.TimeoutError):
        reason = "no Dask handshake came back (is it a Dask scheduler?)"
    elif isinstance(exc, OSError):  # refused, unreachable, or closed on us
        reason = " ".join(str(exc).split()) or type(exc).__name__
    else:  # MemoryError, ValueError, ...: its bytes did not parse as Dask's protocol
        reason = f"its reply is not Dask's protocol ({type(exc).__name__}); is it a Dask scheduler?"
    return BackendUnavailableError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s: {reason[:200]}")


def probe_scheduler(address: str, timeout: float) -> None:
    """Connect and shake hands with the scheduler at `address`, within `timeout` (+1) seconds, or raise a
    BackendUnavailableError naming it. `distributed.Client(timeout=)` bounds the TCP connect only: a
    server that accepts and then stays silent (not Dask) would hold it for as long as it likes, and one
    that sends other bytes makes it read a frame length of exabytes (MemoryError). The probe runs in a
    thread of its own, with its own event loop, so a caller inside a running loop (Jupyter) works too."""
    from distributed.comm import connect
    from distributed.security import Security

    async def shake_hands() -> None:
        args = Security().get_connection_args("client")  # tls:// with the security Dask's config gives
        # connect() retries a refused port until `timeout` and then says so; the extra second is for
        # a handshake that never comes, so that the two failures are told apart
        comm = await asyncio.wait_for(connect(address, timeout=timeout, **args), timeout + 1)
        await comm.close()

    with ThreadPoolExecutor(1, thread_name_prefix="spikestack-probe") as pool:
        try:
            pool.submit(asyncio.run, shake_hands()).result()
        except Exception as exc:  # MemoryError too: whatever the far end did, it is not a usable scheduler
            raise _unreachable(address, timeout, exc) from None


def run_tasks(tasks: list[ChunkTask], client: Client | None, progress: bool = True, on_progress: Progress | None = None
              ) -> list[ChunkResult]:
    """Run every task (in process when client is None), with a progress bar; results in task order."""
    results: list[ChunkResult | None] = [None] * len(tasks)
    bar = tqdm(total=len(tasks), unit="task", desc="sweep", disable=not progress, dynamic_ncols=True)

    finished = 0  # our own count: a disabled tqdm bar counts nothing

    def done(index: int, result: ChunkResult) -> None:
        nonlocal finished
        results[index] = result
        finished += 1
        bar.update(1)
        if on_progress is not None:
            on_progress(finished, len(tasks))

    try:
        if client is None:
            for i, task in enumerate(tasks):
                done(i, run_chunk(task))
        else:
            from distributed import as_completed

            run_id = uuid.uuid4().hex[:8]  # a fresh key per run: never reuse an earlier sweep's results
            futures = {client.submit(run_chunk, task, retries=RETRIES, pure=False,
                                     key=f"sweep-T{task.steps}-{task.mode}-{task.chunk}-{run_id}"): i
                       for i, task in enumerate(tasks)}
            try:
                for future in as_completed(futures):
                    done(futures[future], future.result())
            finally:
                client.cancel(list(futures))  # after an error: nothing keeps running for nobody
    finally:
        bar.close()
    return results  # type: ignore[return-value]
