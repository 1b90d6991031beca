"""Pyramid Pooling Module (PPM).
Zhao et al., "Pyramid Scene Parsing Network" (PSPNet), CVPR 2017.

The features are average-pooled to a few grids (``bins`` 1, 2, 3 and 6: the whole image, then
halves, thirds and sixths of each side), each pooled map is reduced by a 1x1 convolution
(``in_channels / len(bins)`` channels by default, as in the paper), upsampled bilinearly to the
features' size and concatenated with them; a 3x3 convolution fuses local features and the
pyramid's global context. The pooled branches work on maps as small as 1x1, where BatchNorm in
training would need more than one sample: they use a per-sample GroupNorm, so PPM trains at
batch size 1.

Pooling is adaptive (bin ``i`` of ``b`` covers ``floor(i * n / b)`` to ``ceil((i + 1) * n / b)``
along a side of ``n``: :func:`torch.nn.functional.adaptive_avg_pool2d`). The ONNX export traces
it shape-generically (:mod:`agriseg.models.onnx_export`), so the graph pools correctly at any
input size, not only the size it was exported at.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from agriseg.models.modules.common import ActLayer, ConvNormAct, NormLayer, group_norm, relu


class PPM(nn.Module):
    def __init__(self, in_channels: int, out_channels: int = 512,
                 bins: Sequence[int] = (1, 2, 3, 6), reduction_channels: int | None = None,
                 norm_layer: NormLayer = nn.BatchNorm2d, act_layer: ActLayer = relu,
                 pool_norm_layer: NormLayer = group_norm) -> None:
        super().__init__()
        self.bins = tuple(int(b) for b in bins)
        if not self.bins or min(self.bins) < 1:
            raise ValueError(f"PPM bins must be positive grid sides, got {bins}")
        if reduction_channels is None:
            reduction_channels = max(1, in_channels // len(self.bins))
        self.in_channels, self.out_channels = in_channels, out_channels
        self.reduction_channels = reduction_channels
        self.branches = nn.ModuleList(
            ConvNormAct(in_channels, reduction_channels, 1, norm_layer=pool_norm_layer,
                        act_layer=act_layer) for _ in self.bins)
        self.fuse = ConvNormAct(in_channels + len(self.bins) * reduction_channels, out_channels,
                                3, norm_layer=norm_layer, act_layer=act_layer)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each bin's reduced context, upsampled to ``x``'s size."""
        size = x.shape[-2:]
        return [F.interpolate(branch(F.adaptive_avg_pool2d(x, b)), size=size, mode="bilinear",
                              align_corners=False)
                for b, branch in zip(self.bins, self.branches, strict=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([x, *self.pyramid(x)], dim=1))
