"""Global Convolutional Network block (GCN) and Boundary Refinement (BR).
Peng et al., "Large Kernel Matters -- Improve Semantic Segmentation by Global Convolutional
Network", CVPR 2017.

GCN gives every output pixel a dense ``k x k`` field of view at the cost of ``2k`` taps: two
branches, ``k x 1`` then ``1 x k`` and ``1 x k`` then ``k x 1``, summed, with no norm or
nonlinearity anywhere, as in the paper. The block is therefore one ``k x k`` convolution whose
kernel is a sum of separable (outer-product) terms, with ``2k (in + out) out`` weights instead of
``k^2 in out``. Only the second convolution of each branch has a bias: a bias in the first would
be cut off by the zero padding of the intermediate map near the borders, and the block would no
longer be a single convolution there.

BR models the boundary as a residual: ``x + conv3x3(relu(conv3x3(x)))`` on score maps.
"""

from __future__ import annotations

import torch
from torch import nn


class GCNBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"GCN kernel_size must be odd and positive, got {kernel_size}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = k = kernel_size
        p = k // 2
        self.left = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, (k, 1), padding=(p, 0), bias=False),
            nn.Conv2d(out_channels, out_channels, (1, k), padding=(0, p)))
        self.right = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, (1, k), padding=(0, p), bias=False),
            nn.Conv2d(out_channels, out_channels, (k, 1), padding=(p, 0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.left(x) + self.right(x)


class BoundaryRefinement(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.in_channels = self.out_channels = channels
        self.residual = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1),
                                      nn.ReLU(inplace=True),
                                      nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)
