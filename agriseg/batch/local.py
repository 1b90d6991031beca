"""The local executor: rasters mapped in long-lived worker processes on this machine.

Each worker is a separate process, so a raster that crashes its interpreter, is killed by the
kernel's out-of-memory killer or hangs past ``timeout`` costs that raster only: the executor
records it as failed, starts a fresh worker and goes on. Workers live as long as the batch (a
worker loads PyTorch and its model once, not once per raster) and die with it: on Linux the
kernel kills them when the batch process dies, ``kill -9`` included, so no orphan can write
into the output root while the next run cleans it up.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from agriseg.batch.task import Outcome, Task, run_task
from agriseg.vector.polygonize import main_not_reimported

log = logging.getLogger("agriseg")
TaskFn = Callable[[Task], Outcome]
READY = "ready"


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    task: Task | None = None
    started: float = 0.0
    ready: bool = False  # imports done: a raster's timeout counts from here


def run_local(tasks: Iterable[Task], *, jobs: int = 1, timeout: float | None = None,
              retries: int = 0, task_fn: TaskFn = run_task) -> Iterator[Outcome]:
    """Run ``tasks`` in ``jobs`` worker processes; yield each task's final outcome as it ends.

    A failure marked transient (dead or hung worker, I/O or memory error) is retried up to
    ``retries`` times; ``timeout`` (seconds) kills a worker whose raster takes longer.
    ``task_fn`` must be importable by name (a module-level function).
    """
    pending = deque(tasks)
    attempts: dict[str, int] = {}
    workers: list[_Worker] = []
    ctx = multiprocessing.get_context("spawn")  # never fork a process running torch threads
    try:
        while pending or any(w.task for w in workers):
            _start_tasks(pending, workers, jobs, ctx, task_fn, attempts)
            for task, outcome in _wait_for_one(workers, timeout):
                outcome.attempts = attempts[task.key]
                if should_retry(outcome, retries):
                    log.warning("%s: %s; retrying (%d of %d)", task.raster, outcome.reason,
                                outcome.attempts, retries)
                    pending.appendleft(task)
                    continue
                yield outcome
    finally:
        _stop(workers)


def should_retry(outcome: Outcome, retries: int) -> bool:
    """A transient failure with attempts left (``retries`` counts the extra attempts)."""
    return outcome.status == "failed" and outcome.transient and outcome.attempts <= retries


def _start_tasks(pending: deque, workers: list[_Worker], jobs: int, ctx, task_fn: TaskFn,
                 attempts: dict[str, int]) -> None:
    workers[:] = [w for w in workers if w.process.is_alive() or w.task is not None]
    while pending:
        idle = next((w for w in workers if w.task is None), None)
        if idle is None:
            if len(workers) >= jobs:
                return
            idle = _spawn(ctx, task_fn)
            workers.append(idle)
        task = pending.popleft()
        attempts[task.key] = attempts.get(task.key, 0) + 1
        idle.task, idle.started = task, time.monotonic()
        idle.conn.send(task)


def _spawn(ctx, task_fn: TaskFn) -> _Worker:
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=_worker_main, args=(child_end, os.getpid(), task_fn),
                       name="agriseg-batch-worker", daemon=False)  # vectorizing may fork
    with main_not_reimported():
        proc.start()
    child_end.close()
    return _Worker(proc, parent_end)


def _wait_for_one(workers: list[_Worker], timeout: float | None
                  ) -> list[tuple[Task, Outcome]]:
    """Block until a busy worker reports, dies or runs out of time; return what ended."""
    busy = [w for w in workers if w.task is not None]
    wait_s = None
    if timeout is not None and any(w.ready for w in busy):
        wait_s = max(0.0, min(w.started + timeout for w in busy if w.ready) - time.monotonic())
    ready = set(wait([o for w in busy for o in (w.conn, w.process.sentinel)], wait_s))
    ended = []
    now = time.monotonic()
    for w in busy:
        task = w.task
        assert task is not None
        if w.conn in ready or w.process.sentinel in ready:
            outcome = _receive(w)
            if outcome is None:  # the worker finished starting up
                w.ready, w.started = True, time.monotonic()
                continue
        elif timeout is not None and w.ready and now - w.started >= timeout:
            _kill(w)
            outcome = Outcome(task.key, "failed", f"timed out after {timeout:g} s; the "
                              "worker was stopped", transient=True, seconds=now - w.started)
        else:
            continue
        outcome.seconds = outcome.seconds or (now - w.started)
        w.task = None
        ended.append((task, outcome))
    return ended


def _receive(w: _Worker) -> Outcome | None:
    """The worker's message (None: it is ready), or a failure if it died."""
    task = w.task
    assert task is not None
    with contextlib.suppress(EOFError, OSError):
        if w.conn.poll():
            message = w.conn.recv()
            return None if message == READY else message
    w.process.join(5)
    code = w.process.exitcode
    _kill(w)
    return Outcome(task.key, "failed", f"worker process died ({_describe_exit(code)})",
                   transient=True, worker={"pid": w.process.pid})


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ \
            else f"signal {-code}"
        hint = ", e.g. by the out-of-memory killer" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"


def _kill(w: _Worker) -> None:
    if w.process.is_alive():
        w.process.kill()
    w.process.join(10)
    w.conn.close()


def _stop(workers: list[_Worker]) -> None:
    """Idle workers are told to exit and reaped in the background (tearing down PyTorch takes
    a while; the batch meanwhile writes its index); busy ones (the batch was interrupted) are
    killed at once."""
    idle = [w for w in workers if w.task is None and w.process.is_alive()]
    for w in idle:
        with contextlib.suppress(OSError):
            w.conn.send(None)
    for w in workers:
        if w not in idle:
            _kill(w)
    if idle:
        threading.Thread(target=_reap, args=(idle,), name="agriseg-reaper", daemon=True).start()


def _reap(workers: list[_Worker]) -> None:
    for w in workers:
        w.process.join(30)
        _kill(w)


def _worker_main(conn: Connection, parent_pid: int, task_fn: TaskFn) -> None:
    _die_with_parent(parent_pid)
    _preload()
    conn.send(READY)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            os._exit(0)  # nothing left to flush; skips a second of PyTorch teardown
        try:
            outcome = task_fn(task)
        except BaseException as e:  # noqa: BLE001 - report, then let the executor decide
            outcome = Outcome(task.key, "failed", f"{type(e).__name__}: {e}", transient=True)
        conn.send(outcome)


def _preload() -> None:
    """Import what mapping needs before the worker says it is ready, so that no raster's
    ``timeout`` pays for it: ONNX Runtime where it is installed (the CPU engine), else
    PyTorch and segmentation-models-pytorch (about 3 s together)."""
    import agriseg.jobs.fieldmap  # noqa: F401
    from agriseg.infer.engines import _has_onnxruntime

    if _has_onnxruntime():
        import onnxruntime  # noqa: F401
    else:
        with contextlib.suppress(ImportError):
            import segmentation_models_pytorch  # noqa: F401
    from tqdm import tqdm

    # tqdm's default lock is a multiprocessing semaphore, which the worker's fast exit would
    # leave registered with the resource tracker; a worker's bars are off, a thread lock will do
    tqdm.set_lock(threading.RLock())


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to kill this worker when the batch process dies (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
