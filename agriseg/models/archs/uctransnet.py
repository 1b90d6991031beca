"""UCTransNet on an smp encoder (Wang et al., AAAI 2022): the encoder's skips at strides 2, 4, 8
and 16 are fused by a Channel-wise Cross fusion Transformer (patch sizes 8, 4, 2, 1: one token
per 16 x 16 input pixels at every level), then a U-Net decoder climbs from the stride-32
features: each up-step upsamples (nearest) to the next skip, gates the skip's channels by
Channel-wise Cross Attention, concatenates the two and applies two 3x3 ``conv -> BN -> ReLU``.
The classifier works at stride 2 (the paper's stride-1 skip is the raw input here) and the
logits are upsampled bilinearly to the input's size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from agriseg.models.archs.base import EncoderDecoder
from agriseg.models.modules.cca import ChannelCrossAttention
from agriseg.models.modules.cct import ChannelCrossTransformer
from agriseg.models.modules.common import ConvNormAct

PATCH_SIZES = (8, 4, 2, 1)  # skips at strides 2, 4, 8, 16 to a stride-16 token grid


class UCTransUpBlock(nn.Module):
    """``forward(x, skip)``: ``x`` upsampled to ``skip``'s size, the skip gated by CCA, both
    concatenated and convolved twice."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.cca = ChannelCrossAttention(skip_channels, in_channels)
        self.convs = nn.Sequential(ConvNormAct(in_channels + skip_channels, out_channels, 3),
                                   ConvNormAct(out_channels, out_channels, 3))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.convs(torch.cat([self.cca(skip, up), up], dim=1))


class UCTransNet(EncoderDecoder):
    def __init__(self, encoder_name: str, in_channels: int, classes: int,
                 decoder_channels: Sequence[int] = (256, 128, 64, 32), num_heads: int = 4,
                 num_layers: int = 4, mlp_ratio: float = 4.0,
                 smp_weights: str | None = None) -> None:
        super().__init__(encoder_name, in_channels, 32, smp_weights)
        skips = self.encoder_channels[1:5]  # strides 2, 4, 8, 16
        if min(skips) < 1:
            raise ValueError(f"UCTransNet needs features at strides 2-16; encoder "
                             f"{encoder_name!r} gives channels {self.encoder_channels}")
        decoder_channels = tuple(int(c) for c in decoder_channels)
        if len(decoder_channels) != len(skips) or min(decoder_channels) < 1:
            raise ValueError(f"decoder_channels needs {len(skips)} positive widths (strides 16, "
                             f"8, 4, 2), got {decoder_channels}")
        self.cct = ChannelCrossTransformer(skips, PATCH_SIZES, num_layers=num_layers,
                                           num_heads=num_heads, mlp_ratio=mlp_ratio)
        widths = (self.encoder_channels[5], *decoder_channels)
        self.blocks = nn.ModuleList(
            UCTransUpBlock(c_in, c_skip, c_out)
            for c_in, c_skip, c_out in zip(widths[:-1], reversed(skips), decoder_channels,
                                           strict=True))
        self.classifier = nn.Conv2d(decoder_channels[-1], classes, 1)

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        skips = self.cct(features[1:5])
        x = features[5]
        for block, skip in zip(self.blocks, reversed(skips), strict=True):
            x = block(x, skip)
        return self.classifier(x)
