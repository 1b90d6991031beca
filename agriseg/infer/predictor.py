"""Batched model inference: device choice, inference mode, channels-last and AMP on CUDA.

The predictor knows nothing about rasters: numpy batches in, float32 logits out. Keeping it this
small lets the same object serve ``predict``, evaluation and benchmarks.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from agriseg.infer.devices import resolve_device
from agriseg.infer.prefetch import prefetch  # noqa: F401 - its old home


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
