"""Per-pixel spectral classifier: a stack of 1x1 convolutions, no spatial context.

Useful as a fast baseline when classes differ by colour/NIR alone, and as the reference model for
seam tests: its output at a pixel depends on that pixel only, so tiled and whole-image inference
must agree exactly.
"""

from __future__ import annotations

import torch
from torch import nn


class PixelMLP(nn.Module):
    input_divisor = 1

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
