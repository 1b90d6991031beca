"""Flow Alignment Module (FAM).
Li et al., "Semantic Flow for Fast and Accurate Scene Parsing" (SFNet), ECCV 2020.

Bilinear upsampling puts a coarse map's values where the fine grid's pixel centres fall, but a
coarse map is blurred and shifted by the strided convolutions that made it: adding it to fine
features misaligns object boundaries. The FAM learns where to sample instead. Both inputs are
reduced by 1x1 convolutions to ``mid_channels``, the coarse one is upsampled bilinearly to the
fine size, the two are concatenated, and a 3x3 convolution predicts a flow field: two channels,
``(dx, dy)`` in fine-grid pixels. The *coarse* features themselves (not the reduced ones) are
then sampled bilinearly at each fine pixel's position moved by its flow (``F.grid_sample``).

The flow convolution starts at zero, so a fresh FAM is exactly bilinear upsampling
(``F.interpolate(..., mode="bilinear", align_corners=False)``): the sampling grid is the fine
grid's pixel centres in grid_sample's ``align_corners=False`` coordinates, and ``border``
padding clamps positions at the edge as ``interpolate`` does. The flow is converted from
fine-grid pixels to grid_sample's ``[-1, 1]`` range by ``2 / size`` (the reference code divides
by ``size``, halving the step); the grid is built in float32 even under bf16 autocast, where
half a bf16 step is already a third of a pixel on a 160-pixel-wide map.

It exports to ONNX (``GridSample``, opset 16 and later), with the grid built from the input's
shape so the exported graph keeps dynamic height and width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pixel_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """The centres of an ``height x width`` grid's pixels in grid_sample's ``align_corners=False``
    coordinates, as a ``(1, height, width, 2)`` tensor of ``(x, y)`` with the dtype and device of
    ``like``."""
    xs = (torch.arange(width, dtype=like.dtype, device=like.device) * 2 + 1) / width - 1
    ys = (torch.arange(height, dtype=like.dtype, device=like.device) * 2 + 1) / height - 1
    gx = xs.view(1, 1, -1, 1).expand(1, height, width, 1)
    gy = ys.view(1, -1, 1, 1).expand(1, height, width, 1)
    return torch.cat([gx, gy], dim=-1)


def flow_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``x`` (``N, C, h, w``, any size) bilinearly on the grid of ``flow``
    (``N, 2, H, W``): output pixel ``(i, j)`` takes ``x`` where bilinear upsampling to
    ``H x W`` would have taken pixel ``(i + dy, j + dx)``, ``(dx, dy) = flow[:, :, i, j]`` in
    output pixels. Computed in float32 (or wider) and returned in ``x``'s dtype."""
    dtype = torch.promote_types(torch.promote_types(x.dtype, flow.dtype), torch.float32)
    height, width = flow.shape[-2:]
    flow = flow.to(dtype)
    # tensor / size, not a Python float: the ONNX trace keeps the size dynamic
    step = torch.cat([flow[:, :1] * 2 / width, flow[:, 1:] * 2 / height], dim=1)
    grid = pixel_grid(height, width, flow) + step.permute(0, 2, 3, 1)
    out = F.grid_sample(x.to(dtype), grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.to(x.dtype)


class FlowAlignment(nn.Module):
    """``forward(fine, coarse)``: ``coarse`` (``in_channels``, any smaller size) warped onto
    ``fine``'s grid by a predicted flow; ``in_channels`` channels out, for adding to ``fine``.
    Both inputs have ``in_channels`` channels."""

    def __init__(self, in_channels: int, mid_channels: int | None = None) -> None:
        super().__init__()
        mid_channels = mid_channels or max(in_channels // 2, 1)
        self.in_channels, self.mid_channels = in_channels, mid_channels
        self.out_channels = in_channels
        self.reduce_fine = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.reduce_coarse = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.flow_conv = nn.Conv2d(2 * mid_channels, 2, 3, padding=1, bias=True)
        nn.init.zeros_(self.flow_conv.weight)
        nn.init.zeros_(self.flow_conv.bias)

    def flow(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """The flow field ``(N, 2, H, W)``: ``(dx, dy)`` in pixels of ``fine``'s grid."""
        up = F.interpolate(self.reduce_coarse(coarse), size=fine.shape[-2:], mode="bilinear",
                           align_corners=False)
        return self.flow_conv(torch.cat([up, self.reduce_fine(fine)], dim=1))

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return flow_warp(coarse, self.flow(fine, coarse))
