"""NEAT on an smp encoder: the stride 8, 16 and 32 features, upsampled to stride 8 and
concatenated, feed a :class:`~agriseg.models.modules.neat.GrowableHead` whose width and depth
(``head_width``, ``head_blocks``) grow during training; a grown checkpoint's card carries them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from agriseg.models.archs.base import EncoderDecoder
from agriseg.models.modules.neat import GrowableHead


class NEATNet(EncoderDecoder):
    def __init__(self, encoder_name: str, in_channels: int, classes: int, head_width: int = 64,
                 head_blocks: int = 0, smp_weights: str | None = None) -> None:
        super().__init__(encoder_name, in_channels, 32, smp_weights)
        self.head = GrowableHead(sum(self.encoder_channels[-3:]), classes, head_width,
                                 head_blocks)

    def grown_shape(self) -> dict[str, int]:
        """What to store in the card's ``arch`` so the checkpoint rebuilds at this size."""
        return self.head.shape()

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[-3].shape[-2:]
        levels = [features[-3]] + [F.interpolate(f, size=size, mode="bilinear",
                                                 align_corners=False) for f in features[-2:]]
        return self.head(torch.cat(levels, dim=1))
