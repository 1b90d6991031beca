"""Batched model inference: device choice, inference mode, channels-last and AMP on CUDA.

The predictor knows nothing about rasters: numpy batches in, float32 logits out. Keeping it this
small lets the same object serve ``predict``, evaluation and benchmarks.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from agriseg.infer.devices import resolve_device

T = TypeVar("T")


class Predictor:
    """Run ``model`` on batches of normalized patches ``(N, C, H, W)``."""

    def __init__(self, model: nn.Module, device: str = "auto", amp: bool = True,
                 channels_last: bool = True) -> None:
        self.device = resolve_device(device)
        self.amp = amp and self.device.type == "cuda"
        self.channels_last = channels_last
        self.model = model.eval().to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = (torch.autocast("cuda", dtype=torch.float16) if self.amp
               else contextlib.nullcontext())
        with ctx:
            y = self.model(x)
        return y.float().contiguous().cpu().numpy()


_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead of the consumer.

    Reading and decoding the next batch (GDAL and numpy release the GIL) overlaps with the
    model's forward pass. Exceptions in the producer are re-raised in the consumer; abandoning
    the iterator stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
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
