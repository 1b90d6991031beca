"""PointRend: point sampling, uncertainty, and the point head.
Kirillov et al., "PointRend: Image Segmentation as Rendering", CVPR 2020.

A coarse segmentation head is blurry where classes meet; PointRend refines it only there, as a
renderer subdivides where a surface changes. A small MLP, the point head, predicts the logits of
single points from the fine (stride-4) features and the coarse logits sampled at those points.

Training (:func:`sample_training_points`) draws ``oversample * N`` uniform random points, keeps
the ``importance * N`` most uncertain of them (by :func:`uncertainty` of the bilinearly sampled
coarse logits) and adds ``(1 - importance) * N`` uniform ones for coverage. Inference
(:func:`subdivision_step`) upsamples the current logits x2 and re-predicts its ``N`` most
uncertain pixels, a few times: adaptive subdivision.

Points are ``(x, y)`` in ``[0, 1]`` of the map's extent, pixel ``(i, j)`` of an ``H x W`` map
having its centre at ``((j + 0.5) / W, (i + 0.5) / H)``; :func:`point_sample` reads them with
``grid_sample(align_corners=False)`` and ``border`` padding, so that on a finer grid's pixel
centres it equals ``F.interpolate(mode="bilinear", align_corners=False)``, edges included (the
reference implementation's zero padding pulls points within half a pixel of the border toward
zero). The sampling grid is built in float32 (or wider) even under bf16 autocast.

The subdivision exports to ONNX (``TopK``, ``ScatterElements``, ``GridSample``; opset 16 and
later); :func:`topk_k` keeps ``TopK``'s ``k = min(N, H * W)`` dynamic in the traced graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def point_sample(features: torch.Tensor, points: torch.Tensor, mode: str = "bilinear"
                 ) -> torch.Tensor:
    """``features`` (``N, C, H, W``) at ``points`` (``N, P, 2``, ``(x, y)`` in ``[0, 1]``):
    ``(N, C, P)`` in ``features``' dtype. ``mode="nearest"`` reads the pixel a point falls in
    (for labels)."""
    dtype = torch.promote_types(torch.promote_types(features.dtype, points.dtype),
                                torch.float32)
    grid = (points.to(dtype) * 2 - 1).unsqueeze(2)  # (N, P, 1, 2) in grid_sample's [-1, 1]
    out = F.grid_sample(features.to(dtype), grid, mode=mode, padding_mode="border",
                        align_corners=False)
    return out.squeeze(3).to(features.dtype)


def uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """``-(top1 - top2)`` of the logits over dim 1 (classes), kept as a size-1 dim: highest
    (closest to 0) where the two most likely classes are tied."""
    top2 = torch.topk(logits, 2, dim=1).values
    return (top2[:, 1:2] - top2[:, 0:1])


def sample_training_points(coarse_logits: torch.Tensor, num_points: int,
                           oversample: float = 3.0, importance: float = 0.75,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """``(N, num_points, 2)`` points in ``[0, 1]`` for the point loss: of ``oversample *
    num_points`` uniform random points, the ``importance * num_points`` most uncertain on
    ``coarse_logits`` (``N, C, H, W``), then uniform random ones. No gradient flows."""
    if oversample < 1 or not 0 <= importance <= 1 or num_points < 1:
        raise ValueError(f"need num_points >= 1, oversample >= 1 and 0 <= importance <= 1, got "
                         f"{num_points}, {oversample}, {importance}")
    n, device = coarse_logits.shape[0], coarse_logits.device
    num_uncertain = int(importance * num_points)
    with torch.no_grad():
        candidates = torch.rand(n, int(oversample * num_points), 2, device=device,
                                generator=generator)
        score = uncertainty(point_sample(coarse_logits.detach(), candidates))[:, 0]  # (N, kP)
        keep = torch.topk(score, num_uncertain, dim=1).indices
        chosen = torch.gather(candidates, 1, keep.unsqueeze(-1).expand(-1, -1, 2))
        coverage = torch.rand(n, num_points - num_uncertain, 2, device=device,
                              generator=generator)
        return torch.cat([chosen, coverage], dim=1)


def _as_int(k: torch.Tensor) -> int:
    # tracing only: topk takes the 0-d tensor as its k, so the graph keeps it dynamic
    return k  # type: ignore[return-value]


def topk_k(num_points: int, size: int | torch.Tensor) -> int:
    """``min(num_points, size)``; while tracing (ONNX export) a tensor computed from the traced
    ``size``, which Python's ``min`` would freeze to the example input's value."""
    if not torch.jit.is_tracing():
        return min(num_points, int(size))
    size = torch.as_tensor(size).reshape(1)
    return _as_int(torch.cat([torch.tensor([num_points], dtype=size.dtype), size]).min())


def subdivision_points(logits: torch.Tensor, num_points: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``min(num_points, H * W)`` most uncertain pixels of ``logits`` (``N, C, H, W``):
    their flat indices ``(N, P)`` into ``H * W`` and their centres ``(N, P, 2)`` as points in
    ``[0, 1]``."""
    height, width = logits.shape[-2:]
    score = uncertainty(logits).flatten(1)  # (N, H * W)
    indices = torch.topk(score, topk_k(num_points, height * width), dim=1).indices
    dtype = torch.promote_types(logits.dtype, torch.float32)
    # tensor / size, not a Python float: the ONNX trace keeps the size dynamic
    xs = ((indices % width).to(dtype) + 0.5) / width
    ys = (torch.div(indices, width, rounding_mode="floor").to(dtype) + 0.5) / height
    return indices, torch.stack([xs, ys], dim=-1)


class PointHead(nn.Module):
    """``forward(fine, coarse)``: point logits ``(N, classes, P)`` from the fine features
    (``N, fine_channels, P``) and the coarse logits (``N, classes, P``) at the same points. An
    MLP of ``layers`` 1x1 ``Conv1d`` + ReLU of ``hidden`` channels and a linear predictor; the
    coarse logits are concatenated again to the input of every layer, as in the paper."""

    def __init__(self, fine_channels: int, classes: int, hidden: int = 256,
                 layers: int = 3) -> None:
        super().__init__()
        self.in_channels, self.out_channels = fine_channels + classes, classes
        widths = [fine_channels] + [hidden] * layers
        self.layers = nn.ModuleList(nn.Conv1d(w + classes, hidden, 1) for w in widths[:-1])
        self.predictor = nn.Conv1d(widths[-1] + classes, classes, 1)
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        nn.init.normal_(self.predictor.weight, std=1e-3)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        x = fine
        for layer in self.layers:
            x = F.relu(layer(torch.cat([x, coarse], dim=1)))
        return self.predictor(torch.cat([x, coarse], dim=1))


def subdivision_step(logits: torch.Tensor, coarse_logits: torch.Tensor, fine: torch.Tensor,
                     point_head: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     num_points: int) -> torch.Tensor:
    """One step of adaptive subdivision: ``logits`` upsampled x2 bilinearly, then its
    ``num_points`` most uncertain pixels replaced by ``point_head(fine at the points, coarse
    logits at the points)``. ``coarse_logits`` is the coarse head's map (what the point head is
    trained on), not the current ``logits``; ``fine`` is any size."""
    logits = F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False)
    n, c = logits.shape[:2]
    indices, points = subdivision_points(logits, num_points)
    predicted = point_head(point_sample(fine, points), point_sample(coarse_logits, points))
    flat = logits.flatten(2).scatter(2, indices.unsqueeze(1).expand(-1, c, -1),
                                     predicted.to(logits.dtype))
    return flat.reshape(logits.shape)
