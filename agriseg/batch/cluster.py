"""The Dask executor: one task per raster on a ``dask.distributed`` cluster.

``--workers N`` starts a ``LocalCluster`` of N single-threaded worker processes on this machine;
``--scheduler ADDRESS`` uses a running cluster (``dask scheduler`` on one machine, ``dask
worker ADDRESS`` on others). Tasks run :func:`~agriseg.batch.task.run_task`, the same function
as the local executor, so outputs are identical; a worker process keeps its loaded models
between tasks. Workers must see the inputs and the output root at the same paths (a shared
file system). A task may ask for worker resources (``resources={"GPU": 1}``) so that it runs
only on workers started with ``dask worker ADDRESS --resources GPU=1``; such a worker maps on
its GPU (``--device auto``). Dask is an optional dependency, imported only here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from agriseg.batch.local import should_retry
from agriseg.batch.task import Outcome, Task, run_task
from agriseg.errors import ConfigError, first_line

log = logging.getLogger("agriseg")
EXTRA_HINT = '--workers/--scheduler need Dask, which is not installed: pip install "agriseg[dask]"'


def require_dask() -> None:
    """Fail with one line naming the extra when Dask is not installed."""
    _distributed()


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigError(EXTRA_HINT) from None
    return distributed


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None,
                resources: dict[str, float] | None = None,
                dashboard_address: str | None = ":8787") -> Iterator[Any]:
    """A ``distributed.Client``: on a new ``LocalCluster`` of ``workers`` processes (each
    offering ``resources``), or connected to the scheduler at ``scheduler`` (one of whose
    workers must offer ``resources``). Closed, and the cluster stopped, on exit."""
    distributed = _distributed()
    import dask

    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: "
                              f"{first_line(e)}") from None
        with client:
            _check_resources(client, scheduler, resources)
            yield client
        return
    # a dead worker fails its task at once: --retries decides about retrying, not Dask
    with _environ_kept(), dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                     dashboard_address=dashboard_address,
                                     resources=resources or None,
                                     silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _check_resources(client: Any, scheduler: str, resources: dict[str, float] | None) -> None:
    """Tasks asking for resources no worker has would wait for ever: refuse at once."""
    if not resources:
        return
    offered = [w.get("resources", {}) for w in client.scheduler_info()["workers"].values()]
    if not any(all(r.get(k, 0) >= v for k, v in resources.items()) for r in offered):
        want = ",".join(f"{k}={v:g}" for k, v in resources.items())
        raise ConfigError(f"no worker of the Dask scheduler at {scheduler} offers {want}; "
                          f"start workers with: dask worker {scheduler} --resources {want}")


@contextlib.contextmanager
def _environ_kept() -> Iterator[None]:
    """Undo what starting a LocalCluster writes into this process's environment
    (``MALLOC_TRIM_THRESHOLD_``, ``OMP_NUM_THREADS=1``...: meant for its workers, but left
    behind for every process started afterwards, local batch workers included)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        if dict(os.environ) != saved:
            os.environ.clear()
            os.environ.update(saved)


def run_dask(tasks: Iterable[Task], client: Any, *, retries: int = 0,
             resources: dict[str, float] | None = None,
             task_fn: Callable[[Task], Outcome] = run_task) -> Iterator[Outcome]:
    """Submit one task per raster; yield each final outcome as it ends (retrying transient
    failures, a lost worker included, up to ``retries`` times).

    No more tasks are in flight than the cluster has worker threads, so a worker only ever
    holds the raster it is mapping: when it dies, that raster fails and no queued one with
    it (Dask would blame every task it had handed to the dead worker).
    """
    distributed = _distributed()
    run_id = uuid.uuid4().hex[:8]
    attempts: dict[str, int] = {}
    pending = deque(tasks)
    futures: dict[Any, Task] = {}
    done = distributed.as_completed()

    def fill() -> None:
        capacity = max(1, sum(client.nthreads().values()))
        while pending and len(futures) < capacity:
            task = pending.popleft()
            attempts[task.key] = attempts.get(task.key, 0) + 1
            # one task group per run ("agriseg-map-<run>") on the dashboard
            name = task.key.replace("-", "_")
            fut = client.submit(task_fn, task, key=f"agriseg-map-{run_id}-{name}."
                                f"{attempts[task.key]}", pure=False, resources=resources)
            futures[fut] = task
            done.add(fut)

    fill()
    try:
        for fut in done:
            task = futures.pop(fut)
            try:
                outcome = fut.result()
            except Exception as e:  # noqa: BLE001 - a lost worker or a cancelled task
                outcome = Outcome(task.key, "failed", f"Dask worker lost while mapping it "
                                  f"({type(e).__name__}: {first_line(e)})", transient=True)
            outcome.attempts = attempts[task.key]
            if should_retry(outcome, retries):
                log.warning("%s: %s; retrying (%d of %d)", task.raster, outcome.reason,
                            outcome.attempts, retries)
                pending.appendleft(task)
            else:
                yield outcome
            fill()
    finally:
        if futures:
            client.cancel(list(futures))


def dashboard_of(client: Any) -> str | None:
    with contextlib.suppress(Exception):
        return client.dashboard_link
    return None
