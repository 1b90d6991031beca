"""Reading ahead and writing behind on threads, so the model never waits for GDAL.

:func:`prefetch` reads and normalizes the next batch while the model runs;
:func:`background_sink` compresses finished rows into the outputs while it runs. Kept free of
PyTorch so the ONNX Runtime path can use it without importing torch.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


HELPER_NICENESS = 10


def yield_to_the_model() -> None:
    """Lower the calling thread's CPU priority (Linux: threads have their own nice value).

    The model's threads use every core; a reader or writer thread that preempts one of them
    stalls the whole parallel operator until it gets its core back (measured on 2 cores, 4096^2
    ONNX predict: median forward 0.40 s per batch of 4 beside the reader, 0.36 s alone). At a
    lower priority the helpers run in the model's gaps instead. No-op where per-thread
    priorities do not exist.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid)
                       + HELPER_NICENESS)


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead of the consumer.

    Reading and decoding the next batch (GDAL and numpy release the GIL) overlaps with the
    model's forward pass. Exceptions in the producer are re-raised in the consumer; abandoning
    the iterator stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        yield_to_the_model()
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as e:  # handed to the consumer, which re-raises it
            q.put(e)

    thread = threading.Thread(target=produce, name="agriseg-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                q.get_nowait()
            thread.join(timeout=0.05)


@contextlib.contextmanager
def background_sink(consume: Callable[[T], None], depth: int = 4
                    ) -> Iterator[Callable[[T], None]]:
    """A ``put(item)`` that hands items to ``consume`` on a writer thread, in order.

    At most ``depth`` items wait (the model blocks beyond that, so memory stays bounded).
    Leaving the block normally waits until every item is consumed; an exception raised by
    ``consume`` is re-raised by the next ``put`` or at the end of the block. Leaving on an
    exception drops what is still queued.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    failed: list[BaseException] = []
    abandon = threading.Event()

    def work() -> None:
        yield_to_the_model()
        while True:
            item = q.get()
            if item is _DONE:
                return
            if failed or abandon.is_set():
                continue  # drain without consuming after an error
            try:
                consume(item)
            except BaseException as e:  # handed to the producer, which re-raises it
                failed.append(e)

    thread = threading.Thread(target=work, name="agriseg-writer", daemon=True)
    thread.start()

    def put(item: T) -> None:
        if failed:
            raise failed[0]
        q.put(item)

    try:
        yield put
    except BaseException:
        abandon.set()
        q.put(_DONE)
        thread.join()
        raise
    q.put(_DONE)
    thread.join()
    if failed:
        raise failed[0]
