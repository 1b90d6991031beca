"""STDC-Seg (Fan et al., CVPR 2021): BiSeNet's context path and fusion on the STDC network, with
detail guidance in training (:mod:`agriseg.models.modules.stdc`).

STDC is its own backbone, not an smp encoder: ``encoder_name`` is ``"stdc1"`` or ``"stdc2"``,
built as ``self.encoder`` (an :class:`~agriseg.models.modules.stdc.STDCNet`, output stride 32,
so a local weights file given as ``encoder_weights`` loads into it). The decoder is the
paper's Fig. 6, from BiSeNet (Yu et al., ECCV 2018):

* global context: the stride-32 features averaged to 1x1, 1x1 conv + norm + act;
* attention refinement (ARM) of the stride-32 and stride-16 features: 3x3 conv + norm + act to
  ``context_channels``, scaled by a channel attention (global average, 1x1 conv + norm,
  sigmoid). The refined stride-32 features plus the global context are upsampled (nearest) to
  stride 16 and smoothed by a 3x3 conv + norm + act, added to the refined stride-16 features,
  upsampled to stride 8 and smoothed again;
* feature fusion (FFM) of that with the stride-8 features: concatenation, 1x1 conv + norm + act
  to ``fuse_channels``, plus itself scaled by a channel attention (global average, 1x1 conv to a
  quarter, act, 1x1 conv, sigmoid);
* the segmentation head at stride 8 (3x3 conv + norm + act, 1x1 classifier); :meth:`forward`
  upsamples the logits bilinearly to the input's size.

The norms after global averaging (1x1 maps) are GroupNorm, so the network trains at batch
size 1; the others are BatchNorm.

Training only: the detail head (3x3 conv + norm + act to ``detail_channels``, 1x1 to one
logit) on the stride-8 features of the backbone. A forward in training mode keeps its logits;
:meth:`STDCSeg.auxiliary_loss` turns them into the detail loss (BCE + dice against the detail
target of the labels) and releases them. In evaluation the head does not run, so inference and
ONNX export have no extra cost. The reference's auxiliary segmentation heads on the context path
(OHEM losses at strides 8 and 16) are not built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agriseg.models.modules.common import ConvNormAct, group_norm
from agriseg.models.modules.stdc import detail_loss, stdc_net


def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class AttentionRefinement(nn.Module):
    """BiSeNet's attention refinement module: 3x3 conv + norm + act, then channel attention."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvNormAct(in_channels, out_channels, 3)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                       nn.Conv2d(out_channels, out_channels, 1, bias=False),
                                       group_norm(out_channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x * self.attention(x)


class FeatureFusion(nn.Module):
    """BiSeNet's feature fusion module: concat, 1x1 conv + norm + act, ``y + y * attention``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvNormAct(in_channels, out_channels, 1)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                       nn.Conv2d(out_channels, out_channels // 4, 1, bias=False),
                                       nn.ReLU(inplace=True),
                                       nn.Conv2d(out_channels // 4, out_channels, 1, bias=False),
                                       nn.Sigmoid())

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        y = self.conv(torch.cat([fine, coarse], dim=1))
        return y + y * self.attention(y)


class STDCSeg(nn.Module):
    def __init__(self, encoder_name: str = "stdc1", in_channels: int = 3, classes: int = 3,
                 context_channels: int = 128, fuse_channels: int = 256,
                 detail_channels: int = 64, smp_weights: str | None = None) -> None:
        super().__init__()
        if smp_weights is not None:
            raise ValueError("STDC is its own backbone, without smp weights; give a local "
                             "weights file as encoder_weights")
        self.encoder = stdc_net(encoder_name, in_channels)
        self.classes = classes
        self.input_divisor = self.encoder.output_stride
        c8, c16, c32 = self.encoder.out_channels[2:]
        cc = context_channels
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                     ConvNormAct(c32, cc, 1, norm_layer=group_norm))
        self.arm32 = AttentionRefinement(c32, cc)
        self.arm16 = AttentionRefinement(c16, cc)
        self.refine32 = ConvNormAct(cc, cc, 3)
        self.refine16 = ConvNormAct(cc, cc, 3)
        self.ffm = FeatureFusion(c8 + cc, fuse_channels)
        self.head = nn.Sequential(ConvNormAct(fuse_channels, fuse_channels, 3),
                                  nn.Conv2d(fuse_channels, classes, 1))
        self.detail_head = nn.Sequential(ConvNormAct(c8, detail_channels, 3),
                                         nn.Conv2d(detail_channels, 1, 1))
        self._detail_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, f8, f16, f32 = self.encoder(x)
        up32 = self.refine32(_upsample(self.arm32(f32) + self.context(f32), f16))
        up16 = self.refine16(_upsample(self.arm16(f16) + up32, f8))
        logits = self.head(self.ffm(f8, up16))
        self._detail_logits = self.detail_head(f8) if self.training else None
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def auxiliary_loss(self, labels: torch.Tensor) -> torch.Tensor:
        """The detail loss of the last training-mode forward against ``labels`` ``(N, H, W)``
        (255 ignored), releasing the detail logits that forward kept."""
        logits, self._detail_logits = self._detail_logits, None
        if logits is None:
            raise RuntimeError("auxiliary_loss needs a forward in training mode first")
        return detail_loss(logits, labels, num_classes=self.classes)
