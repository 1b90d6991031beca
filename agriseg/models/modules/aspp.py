"""Atrous Spatial Pyramid Pooling (ASPP).
Chen et al., "Rethinking Atrous Convolution..." (DeepLab v3, 2017) and DeepLab v3+ (ECCV 2018).

Parallel branches see the same features at several fields of view: a 1x1 convolution, three
3x3 convolutions dilated by ``rates`` (6/12/18 at output stride 16, doubled at 8), and image
pooling (global average, 1x1 convolution, broadcast back). Their outputs are concatenated and
projected by a 1x1 convolution. The pooling branch works on a 1x1 map, where BatchNorm in
training would need more than one sample: it uses a per-sample GroupNorm, so ASPP trains at
batch size 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from agriseg.models.modules.common import ActLayer, ConvNormAct, NormLayer, group_norm, relu


def aspp_rates(output_stride: int) -> tuple[int, int, int]:
    """The paper's rates for an encoder at ``output_stride`` (16: 6/12/18; 8: doubled)."""
    if output_stride not in (8, 16, 32):
        raise ValueError(f"ASPP rates are defined for output stride 8, 16 or 32, got "
                         f"{output_stride}")
    scale = 16 // output_stride if output_stride <= 16 else 0.5
    return tuple(int(r * scale) for r in (6, 12, 18))


class ASPP(nn.Module):
    def __init__(self, in_channels: int, out_channels: int = 256,
                 rates: Sequence[int] = (6, 12, 18), norm_layer: NormLayer = nn.BatchNorm2d,
                 act_layer: ActLayer = relu, pool_norm_layer: NormLayer = group_norm,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.rates = in_channels, out_channels, tuple(rates)
        self.branches = nn.ModuleList(
            [ConvNormAct(in_channels, out_channels, 1, norm_layer=norm_layer,
                         act_layer=act_layer)]
            + [ConvNormAct(in_channels, out_channels, 3, dilation=r, norm_layer=norm_layer,
                           act_layer=act_layer) for r in self.rates])
        self.pool = ConvNormAct(in_channels, out_channels, 1, norm_layer=pool_norm_layer,
                                act_layer=act_layer)
        self.project = nn.Sequential(
            ConvNormAct(out_channels * (len(self.rates) + 2), out_channels, 1,
                        norm_layer=norm_layer, act_layer=act_layer),
            nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        pooled = self.pool(F.adaptive_avg_pool2d(x, 1))
        outs.append(pooled.expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))
