"""PSPNet from agriseg's own pyramid pooling module (Zhao et al., CVPR 2017): a dilated encoder
at output stride 8, PPM (bins 1/2/3/6) on the deepest features, dropout and a 1x1 classifier.
Unlike smp's PSPNet, its pooled branches train at batch size 1 and it keeps the paper's
stride 8 instead of using the encoder's first stages only."""

from __future__ import annotations

import torch
from torch import nn

from agriseg.models.archs.base import EncoderDecoder
from agriseg.models.modules.ppm import PPM


class PPMNet(EncoderDecoder):
    def __init__(self, encoder_name: str, in_channels: int, classes: int,
                 output_stride: int = 8, ppm_channels: int = 512,
                 reduction_channels: int | None = None, bins: tuple[int, ...] = (1, 2, 3, 6),
                 dropout: float = 0.1, smp_weights: str | None = None) -> None:
        super().__init__(encoder_name, in_channels, output_stride, smp_weights)
        self.ppm = PPM(self.encoder_channels[-1], ppm_channels, bins=tuple(bins),
                       reduction_channels=reduction_channels)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(ppm_channels, classes, 1))

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.ppm(features[-1]))
