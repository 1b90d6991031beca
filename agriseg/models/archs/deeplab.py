"""DeepLabV3+ from agriseg's own ASPP (Chen et al., ECCV 2018): a dilated encoder at output
stride 16 (or 8), ASPP with the paper's rates for that stride on the deepest features, and the
v3+ decoder (stride-4 features reduced to 48 channels, concatenated with the upsampled context,
two 3x3 convolutions). Unlike smp's DeepLabV3+, its image-pooling branch trains at batch 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agriseg.models.archs.base import EncoderDecoder
from agriseg.models.modules.aspp import ASPP, aspp_rates
from agriseg.models.modules.common import ConvNormAct


class DeepLabV3PlusNet(EncoderDecoder):
    def __init__(self, encoder_name: str, in_channels: int, classes: int,
                 output_stride: int = 16, aspp_channels: int = 256, low_channels: int = 48,
                 decoder_channels: int = 256, dropout: float = 0.1,
                 smp_weights: str | None = None) -> None:
        super().__init__(encoder_name, in_channels, output_stride, smp_weights)
        self.aspp = ASPP(self.encoder_channels[-1], aspp_channels,
                         rates=aspp_rates(output_stride), dropout=dropout)
        self.low = ConvNormAct(self.encoder_channels[2], low_channels, 1)
        self.fuse = nn.Sequential(
            ConvNormAct(aspp_channels + low_channels, decoder_channels, 3),
            ConvNormAct(decoder_channels, decoder_channels, 3))
        self.classifier = nn.Conv2d(decoder_channels, classes, 1)

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        low = self.low(features[2])  # stride 4
        context = F.interpolate(self.aspp(features[-1]), size=low.shape[-2:], mode="bilinear",
                                align_corners=False)
        return self.classifier(self.fuse(torch.cat([context, low], dim=1)))
