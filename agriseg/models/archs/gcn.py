"""Global Convolutional Network on an smp encoder (Peng et al., CVPR 2017, Figure 2): the
encoder at output stride 32; at each level from stride 4 to 32 a GCN block turns the features
into class score maps and a boundary refinement (BR) sharpens them; the maps are fused top-down
(upsample the coarser, add, BR), then upsampled to stride 2 and 1 with a BR after each. The
paper's deconvolutions are bilinear upsampling here (no parameters; exports to ONNX)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agriseg.models.archs.base import EncoderDecoder
from agriseg.models.modules.gcn import BoundaryRefinement, GCNBlock

LEVELS = (2, 3, 4, 5)  # encoder features at strides 4, 8, 16, 32


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class GCNNet(EncoderDecoder):
    def __init__(self, encoder_name: str, in_channels: int, classes: int, kernel_size: int = 7,
                 smp_weights: str | None = None) -> None:
        super().__init__(encoder_name, in_channels, 32, smp_weights)
        self.gcn = nn.ModuleList(GCNBlock(self.encoder_channels[i], classes, kernel_size)
                                 for i in LEVELS)
        self.score_br = nn.ModuleList(BoundaryRefinement(classes) for _ in LEVELS)
        self.fuse_br = nn.ModuleList(BoundaryRefinement(classes) for _ in LEVELS[:-1])
        self.out_br = nn.ModuleList(BoundaryRefinement(classes) for _ in range(2))

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        scores = [br(gcn(features[i]))
                  for i, gcn, br in zip(LEVELS, self.gcn, self.score_br, strict=True)]
        x = scores[-1]  # stride 32
        for score, br in zip(reversed(scores[:-1]), reversed(self.fuse_br), strict=True):
            x = br(score + _up(x, score))  # strides 16, 8, 4
        for feature, br in zip((features[1], features[0]), self.out_br, strict=True):
            x = br(_up(x, feature))  # strides 2, 1
        return x
