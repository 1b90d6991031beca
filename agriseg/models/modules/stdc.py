"""Short-Term Dense Concatenate (STDC) module, the STDC1/STDC2 networks and the detail target.
Fan et al., "Rethinking BiSeNet For Real-time Semantic Segmentation", CVPR 2021.

* :class:`STDCModule` (the paper's Fig. 3): four blocks in series, a 1x1 conv + norm + act to
  ``C/2`` channels, then 3x3 conv + norm + act to ``C/4``, ``C/8`` and ``C/8``; the output is
  the concatenation of all four block outputs (``C`` channels), so the receptive fields of the
  blocks (1, 3, 5, 7 pixels) are kept side by side. With ``stride`` 2 the second block starts
  with a 3x3 depthwise conv of stride 2 + norm, and the first block's output enters the
  concatenation through a 3x3 average pooling of stride 2.
* :class:`STDCNet` (the paper's Table 1): stages 1 and 2 are 3x3 conv + norm + act of stride 2
  (32 and 64 channels); stages 3 to 5 are STDC modules (the first of each with stride 2) of 256,
  512 and 1024 channels: ``(2, 2, 2)`` modules for STDC1, ``(4, 5, 3)`` for STDC2. Its forward
  returns the five stage outputs, at strides 2, 4, 8, 16 and 32 (:attr:`STDCNet.strides`,
  :attr:`STDCNet.out_channels`). The classification tail (1x1 conv to 1024, pooling, FC) is not
  built.
* :func:`detail_target` and :func:`detail_loss`, the detail guidance of training (Sec. 3.2): the
  ground-truth detail map is built from the label map with the Laplacian kernel
  ``[[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]`` at strides 1, 2 and 4; each map is thresholded,
  brought back to the label size and the three are fused by the reference implementation's
  fixed weights ``(0.6, 0.3, 0.1)``, then thresholded at 0.1. The paper calls this 1x1 fuse
  learnable, but it gets no gradient through the threshold, so in the reference code it stays
  at these values, fixed here: a pixel is detail where the stride-1 or the stride-2 edges mark
  it (the stride-4 term, 0.1, never passes the threshold alone, as in the reference). The loss
  is binary cross-entropy + dice between the detail head's logits, upsampled bilinearly to the
  label size, and that target.

Unlike the reference, which applies the Laplacian to the class ids themselves (so a boundary is
marked on the side of the larger id only, and zero padding marks the image border), the
Laplacian here is applied to each class's indicator map with replicated borders, and the
Laplacian of the valid mask is subtracted: at a pixel of class ``c``, ``lap(1[c])`` is 8 minus
its neighbours of class ``c`` and ``lap(valid)`` is 8 minus its valid neighbours, so their
difference counts the neighbours of another class. Pixels with a different class among their
eight neighbours, on both sides of every boundary, are edges; ``ignore_index`` pixels are never
edges, never make their neighbours edges, and are left out of :func:`detail_loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agriseg.models.modules.common import ActLayer, NormLayer, relu

STDC_LAYERS: dict[str, tuple[int, int, int]] = {"stdc1": (2, 2, 2), "stdc2": (4, 5, 3)}
STDC_CHANNELS = (32, 64, 256, 512, 1024)
STDC_STRIDES = (2, 4, 8, 16, 32)

LAPLACIAN = ((-1.0, -1.0, -1.0), (-1.0, 8.0, -1.0), (-1.0, -1.0, -1.0))
DETAIL_STRIDES = (1, 2, 4)
DETAIL_WEIGHTS = (0.6, 0.3, 0.1)
DETAIL_THRESHOLD = 0.1


def conv_norm_act(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                  norm_layer: NormLayer = nn.BatchNorm2d,
                  act_layer: ActLayer = relu) -> nn.Sequential:
    """``conv(k, stride) -> norm -> act`` (the reference's ``ConvX``); padding ``k // 2``."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                                   kernel_size // 2, bias=False),
                         norm_layer(out_channels), act_layer())


class STDCModule(nn.Module):
    """``in_channels`` to ``out_channels`` (a multiple of 8) at ``stride`` 1 or 2; see above."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 norm_layer: NormLayer = nn.BatchNorm2d, act_layer: ActLayer = relu) -> None:
        super().__init__()
        if out_channels % 8:
            raise ValueError(f"STDC module channels must be a multiple of 8, got {out_channels}")
        if stride not in (1, 2):
            raise ValueError(f"STDC module stride must be 1 or 2, got {stride}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        c = out_channels
        widths = (c // 2, c // 4, c // 8, c // 8)
        blocks = [conv_norm_act(in_channels, widths[0], 1, norm_layer=norm_layer,
                                act_layer=act_layer)]
        blocks += [conv_norm_act(a, b, 3, norm_layer=norm_layer, act_layer=act_layer)
                   for a, b in zip(widths[:-1], widths[1:], strict=True)]
        self.blocks = nn.ModuleList(blocks)
        if stride == 2:
            half = widths[0]
            self.down: nn.Module = nn.Sequential(
                nn.Conv2d(half, half, 3, stride=2, padding=1, groups=half, bias=False),
                norm_layer(half))
            self.skip: nn.Module = nn.AvgPool2d(3, stride=2, padding=1)
        else:
            self.down = self.skip = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.blocks[0](x)
        outs = [self.skip(first)]
        y = self.down(first)
        for block in self.blocks[1:]:
            y = block(y)
            outs.append(y)
        return torch.cat(outs, dim=1)


class STDCNet(nn.Module):
    """The STDC backbone: ``layers`` STDC modules in stages 3, 4 and 5 (``(2, 2, 2)`` is STDC1,
    ``(4, 5, 3)`` STDC2); :meth:`forward` returns the features of its five stages."""

    def __init__(self, layers: tuple[int, int, int] = (2, 2, 2), in_channels: int = 3,
                 norm_layer: NormLayer = nn.BatchNorm2d, act_layer: ActLayer = relu) -> None:
        super().__init__()
        if len(layers) != 3 or min(layers) < 1:
            raise ValueError(f"STDC needs three stages of at least one module, got {layers}")
        kw = {"norm_layer": norm_layer, "act_layer": act_layer}
        c1, c2, *deep = STDC_CHANNELS
        stages: list[nn.Module] = [conv_norm_act(in_channels, c1, 3, 2, **kw),
                                   conv_norm_act(c1, c2, 3, 2, **kw)]
        prev = c2
        for n, c in zip(layers, deep, strict=True):
            stages.append(nn.Sequential(STDCModule(prev, c, 2, **kw),
                                        *(STDCModule(c, c, 1, **kw) for _ in range(n - 1))))
            prev = c
        self.stages = nn.ModuleList(stages)
        self.in_channels, self.layers = in_channels, tuple(layers)
        self.out_channels: tuple[int, ...] = STDC_CHANNELS
        self.strides: tuple[int, ...] = STDC_STRIDES
        self.output_stride = STDC_STRIDES[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def stdc_net(name: str, in_channels: int = 3) -> STDCNet:
    """``"stdc1"`` or ``"stdc2"``."""
    key = name.lower()
    if key not in STDC_LAYERS:
        raise ValueError(f"unknown STDC network {name!r} (valid: {', '.join(STDC_LAYERS)})")
    return STDCNet(STDC_LAYERS[key], in_channels)


def label_edges(labels: torch.Tensor, stride: int = 1, ignore_index: int = 255,
                num_classes: int | None = None) -> torch.Tensor:
    """``(N, H, W)`` integer labels to a ``{0, 1}`` float map ``(N, ceil(H/s), ceil(W/s))``: 1
    at the pixels (sampled every ``stride``) with a neighbour of another class (see above)."""
    valid = labels != ignore_index
    if num_classes is None:
        num_classes = int(labels[valid].max()) + 1 if bool(valid.any()) else 1
    onehot = F.one_hot(torch.where(valid, labels, 0).long(), num_classes)
    maps = torch.cat([onehot.permute(0, 3, 1, 2) * valid[:, None], valid[:, None]], 1).float()
    k = maps.shape[1]
    kernel = torch.tensor(LAPLACIAN, device=labels.device).expand(k, 1, 3, 3)
    lap = F.conv2d(F.pad(maps, (1, 1, 1, 1), mode="replicate"), kernel, stride=stride, groups=k)
    centre = maps[..., ::stride, ::stride]
    others = (centre[:, :-1] * lap[:, :-1]).sum(1) - centre[:, -1] * lap[:, -1]
    return (others > DETAIL_THRESHOLD).float()


def detail_target(labels: torch.Tensor, ignore_index: int = 255,
                  num_classes: int | None = None) -> torch.Tensor:
    """The ground-truth detail map of ``(N, H, W)`` labels: ``(N, H, W)`` floats in ``{0, 1}``,
    the edges at strides 1, 2 and 4 fused (see above)."""
    h, w = labels.shape[-2:]
    valid = labels != ignore_index
    if num_classes is None:
        num_classes = int(labels[valid].max()) + 1 if bool(valid.any()) else 1
    fused = torch.zeros(labels.shape, device=labels.device)
    for stride, weight in zip(DETAIL_STRIDES, DETAIL_WEIGHTS, strict=True):
        edges = label_edges(labels, stride, ignore_index, num_classes)
        edges = edges.repeat_interleave(stride, -2).repeat_interleave(stride, -1)[..., :h, :w]
        fused = fused + weight * edges
    return (fused > DETAIL_THRESHOLD).float()


def detail_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255,
                num_classes: int | None = None) -> torch.Tensor:
    """Binary cross-entropy + dice (smoothing 1, per image, averaged) between detail
    ``logits`` ``(N, 1, h, w)`` at any stride, upsampled bilinearly to the labels' size, and
    :func:`detail_target` of ``labels`` ``(N, H, W)``; ``ignore_index`` pixels are left out."""
    with torch.autocast(logits.device.type, enabled=False):
        target = detail_target(labels, ignore_index, num_classes)
        valid = (labels != ignore_index).float()
        x = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear",
                          align_corners=False)[:, 0]
        bce = F.binary_cross_entropy_with_logits(x, target, reduction="none")
        bce = (bce * valid).sum() / valid.sum().clamp_min(1.0)
        prob, target = (torch.sigmoid(x) * valid).flatten(1), (target * valid).flatten(1)
        dice = 1 - (2 * (prob * target).sum(1) + 1) / (prob.sum(1) + target.sum(1) + 1)
        return bce + dice.mean()
