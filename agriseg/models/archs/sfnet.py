"""SFNet on an smp encoder (Li et al., ECCV 2020), without the paper's pyramid pooling: 1x1
lateral convolutions on the encoder's stride 4/8/16/32 features; a top-down path where each
Flow Alignment Module warps the coarser map onto the next finer level, which adds its lateral;
a 3x3 convolution on every level; the levels upsampled to stride 4, concatenated, fused by a
3x3 convolution and classified. The flow convolutions start at zero, so a fresh SFNet is an
FPN-style decoder with bilinear upsampling; training learns where to sample instead."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agriseg.models.archs.base import EncoderDecoder
from agriseg.models.modules.common import ConvNormAct
from agriseg.models.modules.fam import FlowAlignment


class SFNet(EncoderDecoder):
    def __init__(self, encoder_name: str, in_channels: int, classes: int,
                 decoder_channels: int = 128, flow_channels: int | None = None,
                 smp_weights: str | None = None) -> None:
        super().__init__(encoder_name, in_channels, 32, smp_weights)
        levels = self.encoder_channels[2:]  # strides 4, 8, 16, 32
        flow_channels = flow_channels or max(decoder_channels // 2, 1)
        self.laterals = nn.ModuleList(ConvNormAct(c, decoder_channels, 1) for c in levels)
        # aligns[i] warps the top-down map of level i + 1 onto level i
        self.aligns = nn.ModuleList(FlowAlignment(decoder_channels, flow_channels)
                                    for _ in levels[:-1])
        self.outputs = nn.ModuleList(ConvNormAct(decoder_channels, decoder_channels, 3)
                                     for _ in levels)
        self.fuse = ConvNormAct(len(levels) * decoder_channels, decoder_channels, 3)
        self.classifier = nn.Conv2d(decoder_channels, classes, 1)

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        feats = features[2:]
        top = self.laterals[-1](feats[-1])
        outs = [self.outputs[-1](top)]
        for i in reversed(range(len(feats) - 1)):
            lateral = self.laterals[i](feats[i])
            top = lateral + self.aligns[i](lateral, top)
            outs.insert(0, self.outputs[i](top))
        size = outs[0].shape[-2:]
        outs = [outs[0]] + [F.interpolate(o, size=size, mode="bilinear", align_corners=False)
                            for o in outs[1:]]
        return self.classifier(self.fuse(torch.cat(outs, dim=1)))
