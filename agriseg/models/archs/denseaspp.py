"""DenseASPP on an smp encoder: dilated encoder at output stride 8, a 1x1 reduction of the
deepest features, the DenseASPP cascade and a 1x1 classifier (Yang et al., CVPR 2018)."""

from __future__ import annotations

import torch
from torch import nn

from agriseg.models.archs.base import EncoderDecoder
from agriseg.models.modules.common import ConvNormAct
from agriseg.models.modules.dense_aspp import DenseASPP


class DenseASPPNet(EncoderDecoder):
    def __init__(self, encoder_name: str, in_channels: int, classes: int,
                 output_stride: int = 8, reduce_channels: int = 256, growth: int = 64,
                 bottleneck: int = 128, rates: tuple[int, ...] = (3, 6, 12, 18, 24),
                 dropout: float = 0.1, smp_weights: str | None = None) -> None:
        super().__init__(encoder_name, in_channels, output_stride, smp_weights)
        self.reduce = ConvNormAct(self.encoder_channels[-1], reduce_channels, 1)
        self.context = DenseASPP(reduce_channels, growth=growth, bottleneck=bottleneck,
                                 rates=tuple(rates), dropout=dropout)
        self.classifier = nn.Sequential(nn.Dropout(dropout),
                                        nn.Conv2d(self.context.out_channels, classes, 1))

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.context(self.reduce(features[-1])))
