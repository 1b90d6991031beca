"""BiSeNet V2 on an smp encoder (Yu et al., IJCV 2021): two branches on the same input, fused by
bilateral guided aggregation (:mod:`agriseg.models.modules.bga`).

* Semantic branch: the smp encoder (output stride 32); its deepest features are reduced by a 1x1
  conv to the detail branch's output channels. It replaces the paper's own light semantic
  branch (stem, gather-and-expand layers, context embedding).
* Detail branch: the paper's (Table 1), wide and shallow on the raw input: three stages of 3x3
  conv + norm + act, each starting with stride 2 (two, three and three convs), to stride 8,
  with ``detail_channels``, ``detail_channels`` and ``2 * detail_channels`` channels (the
  paper's 64/64/128 at the default 64).
* Bilateral guided aggregation at ``2 * detail_channels`` channels, then the segmentation head
  (3x3 conv + norm + act, 1x1 classifier) at stride 8; :meth:`forward` upsamples to the input.

The paper's booster (auxiliary) heads on the semantic stages only add training losses and are
dropped at inference: they are omitted here, so the network has a single output.
"""

from __future__ import annotations

import torch
from torch import nn

from agriseg.models.archs.base import EncoderDecoder
from agriseg.models.modules.bga import BilateralGuidedAggregation
from agriseg.models.modules.common import ConvNormAct


def _stage(in_channels: int, out_channels: int, convs: int) -> nn.Sequential:
    """``convs`` 3x3 conv + norm + act; the first has stride 2."""
    down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1,
                                   bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
    return nn.Sequential(down, *(ConvNormAct(out_channels, out_channels, 3)
                                 for _ in range(convs - 1)))


class DetailBranch(nn.Sequential):
    """The paper's detail branch: stride 8, ``(c, c, 2c)`` channels over its three stages."""

    def __init__(self, in_channels: int, channels: int = 64) -> None:
        super().__init__(_stage(in_channels, channels, 2), _stage(channels, channels, 3),
                         _stage(channels, 2 * channels, 3))
        self.in_channels, self.out_channels, self.stride = in_channels, 2 * channels, 8


class BiSeNetV2(EncoderDecoder):
    def __init__(self, encoder_name: str, in_channels: int, classes: int,
                 detail_channels: int = 64, smp_weights: str | None = None) -> None:
        super().__init__(encoder_name, in_channels, 32, smp_weights)
        self.detail = DetailBranch(in_channels, detail_channels)
        channels = self.detail.out_channels
        self.semantic = ConvNormAct(self.encoder_channels[-1], channels, 1)
        self.bga = BilateralGuidedAggregation(channels)
        self.head = nn.Sequential(ConvNormAct(channels, channels, 3),
                                  nn.Conv2d(channels, classes, 1))

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        # smp's stride-1 "feature" is the input itself: the detail branch starts from it
        detail = self.detail(features[0])
        return self.head(self.bga(detail, self.semantic(features[-1])))
