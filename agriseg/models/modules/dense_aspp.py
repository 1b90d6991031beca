"""Densely connected Atrous Spatial Pyramid Pooling.
Yang et al., "DenseASPP for Semantic Segmentation in Street Scenes", CVPR 2018.

Atrous 3x3 layers with growing rates (3, 6, 12, 18, 24) are cascaded densely: layer ``k`` is
fed the concatenation of the input and the outputs of every earlier layer, through a 1x1
bottleneck, and adds ``growth`` channels. Stacking dilations makes the receptive field the sum
of the cascade's (``1 + 2 * sum(rates)`` = 127 feature pixels for the paper's rates) while the
dense connections keep every intermediate scale. The output is the concatenation of the input
and all layer outputs (``in_channels + len(rates) * growth`` channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from agriseg.models.modules.common import ActLayer, NormLayer, relu


class DenseASPPLayer(nn.Module):
    """``norm-act-conv1x1 (bottleneck) -> norm-act-conv3x3 (dilated, growth) -> dropout``; the
    first layer of the cascade skips the leading norm (its input is already normalized)."""

    def __init__(self, in_channels: int, bottleneck: int, growth: int, rate: int,
                 norm_layer: NormLayer, act_layer: ActLayer, dropout: float,
                 pre_norm: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.rate = in_channels, growth, rate
        pre: list[nn.Module] = [norm_layer(in_channels)] if pre_norm else []
        self.body = nn.Sequential(
            *pre, act_layer(), nn.Conv2d(in_channels, bottleneck, 1, bias=False),
            norm_layer(bottleneck), act_layer(),
            nn.Conv2d(bottleneck, growth, 3, padding=rate, dilation=rate, bias=False),
            nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DenseASPP(nn.Module):
    def __init__(self, in_channels: int, growth: int = 64, bottleneck: int = 128,
                 rates: Sequence[int] = (3, 6, 12, 18, 24),
                 norm_layer: NormLayer = nn.BatchNorm2d, act_layer: ActLayer = relu,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.in_channels, self.growth, self.rates = in_channels, growth, tuple(rates)
        self.layers = nn.ModuleList(
            DenseASPPLayer(in_channels + k * growth, bottleneck, growth, r, norm_layer,
                           act_layer, dropout, pre_norm=k > 0)
            for k, r in enumerate(self.rates))
        self.out_channels = in_channels + len(self.rates) * growth

    @property
    def receptive_field(self) -> int:
        """Side of the cascade's receptive field, in input pixels."""
        return 1 + 2 * sum(self.rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features, dim=1)
