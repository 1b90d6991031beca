"""Batched model inference: device choice, inference mode, channels-last and AMP on CUDA.

The predictor knows nothing about rasters: numpy batches in, float32 logits out. Keeping it this
small lets the same object serve ``predict``, evaluation and benchmarks.

On CUDA, :meth:`Predictor.submit` queues a batch and returns at once: the batch is copied into
page-locked (pinned) host memory and sent with a non-blocking copy, the forward pass and the
copy of its logits back into pinned memory are queued on the stream, and only the returned
function waits, when the logits are needed. The pipeline submits the next batch before it
collects the last one, so the GPU works while the CPU blends. :meth:`Predictor.max_batch`
sizes batches to the GPU's free memory (``--batch-size auto``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from agriseg.constants import CPU_AUTO_BATCH as CPU_BATCH
from agriseg.infer.devices import resolve_device
from agriseg.infer.prefetch import prefetch  # noqa: F401 - its old home

log = logging.getLogger("agriseg")

MAX_AUTO_BATCH = 64
GPU_MEMORY_SHARE = 0.7  # of the free GPU memory that auto-sized batches may use


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
        self._pinned: dict[tuple, list[torch.Tensor]] = {}  # (shape, role) -> 2 buffers
        self._turn = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        result = self.submit(batch)()
        return result.copy() if self.device.type == "cuda" else result

    @torch.inference_mode()
    def submit(self, batch: np.ndarray) -> Callable[[], np.ndarray]:
        """Start the forward pass of ``batch``; the returned function gives its logits.

        On CUDA the logits live in a pinned buffer that the second next ``submit`` reuses:
        use them (or copy them) before then.
        """
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self.device.type != "cuda":
            y = self._forward(torch.from_numpy(x)).float().contiguous().numpy()
            return lambda: y
        self._turn ^= 1
        host_in = self._buffer(x.shape, "in")
        host_in.numpy()[...] = x
        y = self._forward(host_in.to(self.device, non_blocking=True)).float()
        host_out = self._buffer(tuple(y.shape), "out")
        host_out.copy_(y, non_blocking=True)
        done = torch.cuda.Event()
        done.record()

        def result() -> np.ndarray:
            done.synchronize()
            return host_out.numpy()

        return result

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = (torch.autocast("cuda", dtype=torch.float16) if self.amp
               else contextlib.nullcontext())
        with ctx:
            return self.model(x)

    def _buffer(self, shape: tuple, role: str) -> torch.Tensor:
        """One of two pinned host buffers for ``shape``, alternating between submits (a batch
        is collected before the one after next is submitted, so its buffers are free)."""
        bufs = self._pinned.get((shape, role))
        if bufs is None:
            if len(self._pinned) > 8:  # many shapes: a raster of odd sizes, keep it bounded
                self._pinned.clear()
            bufs = [torch.empty(shape, dtype=torch.float32, pin_memory=True) for _ in range(2)]
            self._pinned[(shape, role)] = bufs
        return bufs[self._turn]

    @torch.inference_mode()
    def max_batch(self, channels: int, height: int, width: int,
                  limit: int = MAX_AUTO_BATCH) -> int:
        """The batch size for ``--batch-size auto``: on CUDA the most patches whose forward pass
        fits in :data:`GPU_MEMORY_SHARE` of the free memory (measured with one patch, then
        checked at full size, halving on out-of-memory); :data:`CPU_BATCH` on the CPU."""
        if self.device.type != "cuda":
            return CPU_BATCH
        dev = self.device
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        free, _ = torch.cuda.mem_get_info(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        self._forward(torch.zeros((1, channels, height, width), device=dev))
        per_patch = max(1, torch.cuda.max_memory_allocated(dev) - base)
        n = int(max(1, min(limit, free * GPU_MEMORY_SHARE // per_patch)))
        while n > 1:
            try:
                self._forward(torch.zeros((n, channels, height, width), device=dev))
                torch.cuda.synchronize(dev)
                break
            except torch.cuda.OutOfMemoryError:
                n //= 2
                torch.cuda.empty_cache()
        torch.cuda.empty_cache()
        log.info("batch size auto: %d patches of %dx%d (%.0f MiB each, %.0f MiB free)", n,
                 height, width, per_patch / 2**20, free / 2**20)
        return n
