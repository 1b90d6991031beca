"""PointRend for semantic segmentation on an smp encoder.
Kirillov et al., "PointRend: Image Segmentation as Rendering", CVPR 2020.

A coarse DeepLabV3-style head (ASPP with the paper's rates, then a 1x1 classifier) on a dilated
encoder at ``output_stride`` 16 (or 8) predicts coarse logits; the point head
(:class:`agriseg.models.modules.point_rend.PointHead`) refines them from the stride-4 encoder
features, where it is uncertain.

Training: :meth:`forward` returns the coarse logits (upsampled to the input by the base class,
for the main loss) and keeps ``num_points`` points per image, drawn by importance sampling on
the coarse logits, with the point head's logits there; :meth:`PointRendNet.auxiliary_loss`
turns them into the point loss (cross-entropy against the labels read at the points, nearest,
255 ignored), which the training loop adds. The point head learns only from that loss.

Inference: adaptive subdivision, ``subdivision_steps`` times (by default until stride 4):
upsample x2 bilinearly, replace the ``subdivision_points`` most uncertain pixels by the point
head's predictions. It exports to ONNX (``TopK`` with a dynamic ``k``, ``ScatterElements``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from agriseg.models.archs.base import EncoderDecoder
from agriseg.models.modules.aspp import ASPP, aspp_rates
from agriseg.models.modules.point_rend import (
    PointHead,
    point_sample,
    sample_training_points,
    subdivision_step,
)


class PointRendNet(EncoderDecoder):
    def __init__(self, encoder_name: str, in_channels: int, classes: int,
                 output_stride: int = 16, coarse_channels: int = 256, dropout: float = 0.1,
                 point_hidden: int = 256, point_layers: int = 3, num_points: int = 2048,
                 oversample: float = 3.0, importance: float = 0.75,
                 subdivision_steps: int | None = None, subdivision_points: int = 8192,
                 smp_weights: str | None = None) -> None:
        super().__init__(encoder_name, in_channels, output_stride, smp_weights)
        if output_stride not in (8, 16):
            raise ValueError(f"PointRend's coarse head runs at output stride 8 or 16, got "
                             f"{output_stride}")
        self.num_points, self.oversample, self.importance = num_points, oversample, importance
        self.subdivision_points = subdivision_points
        # strides output_stride -> 4 unless told otherwise
        self.subdivision_steps = (int(math.log2(output_stride // 4)) if subdivision_steps is None
                                  else subdivision_steps)
        self.aspp = ASPP(self.encoder_channels[-1], coarse_channels,
                         rates=aspp_rates(output_stride), dropout=dropout)
        self.classifier = nn.Conv2d(coarse_channels, classes, 1)
        self.point_head = PointHead(self.encoder_channels[2], classes, point_hidden,
                                    point_layers)
        self._points: torch.Tensor | None = None
        self._point_logits: torch.Tensor | None = None

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        fine = features[2]  # stride 4
        coarse = self.classifier(self.aspp(features[-1]))
        if self.training:
            points = sample_training_points(coarse, self.num_points, self.oversample,
                                            self.importance)
            self._points = points
            self._point_logits = self.point_head(point_sample(fine, points),
                                                 point_sample(coarse, points))
            return coarse
        logits = coarse
        for _ in range(self.subdivision_steps):
            logits = subdivision_step(logits, coarse, fine, self.point_head,
                                      self.subdivision_points)
        return logits

    def auxiliary_loss(self, labels: torch.Tensor) -> torch.Tensor:
        """The point loss of the last training :meth:`forward`: cross-entropy of the point
        logits against ``labels`` (``N, H, W`` int64, 255 ignored) read at the same points
        (nearest pixel), averaged over the points not ignored (0 with a gradient if none)."""
        if self._points is None or self._point_logits is None:
            raise RuntimeError("auxiliary_loss needs a forward in training mode first")
        points, logits = self._points, self._point_logits
        self._points = self._point_logits = None  # the graph is freed with the step
        target = point_sample(labels.unsqueeze(1).float(), points, mode="nearest")[:, 0]
        target = target.round().long()
        loss = F.cross_entropy(logits.float(), target, ignore_index=255, reduction="sum")
        return loss / (target != 255).sum().clamp(min=1)
