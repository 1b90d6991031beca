"""Bilateral Guided Aggregation (BGA).
Yu et al., "BiSeNet V2: Bilateral Network with Guided Aggregation...", IJCV 2021 (Fig. 6).

Fuses a detail branch (fine, stride 8) with a semantic branch (coarse, stride 32) of the same
``channels``, each guiding the other through a sigmoid gate instead of a plain sum or concat:

* fine path: the detail features, kept at stride 8 (3x3 depthwise conv + norm + 1x1 conv), are
  gated by the semantic features brought to stride 8 (3x3 conv + norm, upsampled x4, sigmoid);
* coarse path: the detail features, brought to stride 32 (3x3 conv stride 2 + norm, 3x3 average
  pooling stride 2), are gated by the semantic features kept at stride 32 (3x3 depthwise conv +
  norm + 1x1 conv, sigmoid), then upsampled x4 to stride 8.

The two paths are summed and fused by a 3x3 conv + norm + act. ``forward`` accepts ``fine_gate``
and ``coarse_gate`` to replace either sigmoid gate (``0`` closes a path, ``1`` opens it fully);
:meth:`~BilateralGuidedAggregation.fine_gate` and :meth:`~BilateralGuidedAggregation.coarse_gate`
return the gates the semantic features set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agriseg.models.modules.common import ActLayer, ConvNormAct, NormLayer, relu

Gate = torch.Tensor | float | None


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class BilateralGuidedAggregation(nn.Module):
    def __init__(self, channels: int, norm_layer: NormLayer = nn.BatchNorm2d,
                 act_layer: ActLayer = relu) -> None:
        super().__init__()
        self.in_channels = self.out_channels = channels
        c = channels
        # detail branch (stride 8)
        self.detail_keep = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), norm_layer(c),
            nn.Conv2d(c, c, 1, bias=False))
        self.detail_down = nn.Sequential(
            nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), norm_layer(c),
            nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=False))
        # semantic branch (stride 32)
        self.semantic_up = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False),
                                         norm_layer(c))
        self.semantic_keep = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), norm_layer(c),
            nn.Conv2d(c, c, 1, bias=False))
        self.fuse = ConvNormAct(c, c, 3, norm_layer=norm_layer, act_layer=act_layer)

    def fine_gate(self, detail: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        """The gate on the detail features at stride 8: the semantic features upsampled."""
        return torch.sigmoid(_resize(self.semantic_up(semantic), detail))

    def coarse_gate(self, semantic: torch.Tensor) -> torch.Tensor:
        """The gate on the downsampled detail features, at stride 32."""
        return torch.sigmoid(self.semantic_keep(semantic))

    def forward(self, detail: torch.Tensor, semantic: torch.Tensor, fine_gate: Gate = None,
                coarse_gate: Gate = None) -> torch.Tensor:
        """``detail`` at stride 8 and ``semantic`` at stride 32 (``channels`` each) to the fused
        features at stride 8; a given ``fine_gate``/``coarse_gate`` (a tensor broadcastable to
        that path's features, or a number) replaces the sigmoid gate of that path."""
        if fine_gate is None:
            fine_gate = self.fine_gate(detail, semantic)
        if coarse_gate is None:
            coarse_gate = self.coarse_gate(semantic)
        fine = self.detail_keep(detail) * fine_gate
        coarse = self.detail_down(detail) * coarse_gate
        return self.fuse(fine + _resize(coarse, detail))
