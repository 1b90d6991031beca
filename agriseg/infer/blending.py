"""Blending weights for overlapping patches.

Predictions near a patch border see little context and are the least reliable, so overlapping
patches are averaged with weights that fall towards each patch's border:

* ``hann``: a squared-sine (Hann) window shifted by half a pixel so it never reaches zero — a
  pixel on the raster's edge, covered by one patch only, still gets that patch's prediction.
* ``crop``: centre-cropping. Every pixel takes the patch whose centre is nearest (the
  boundaries lie half-way between neighbouring patch centres), weight 1 there and 0 elsewhere.

Weights are separable: a patch's 2-D weight is the outer product of its row and column weights,
each computed per position along its axis (the edge-aligned last patch overlaps its neighbour by
more than the nominal overlap, and centre-cropping has to know that).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from agriseg.constants import BLEND_MODES

BlendMode = Literal["hann", "crop"]


def hann_window(n: int) -> np.ndarray:
    """``sin(pi * (i + 0.5) / n) ** 2``: symmetric, peak 1 at the centre, positive everywhere."""
    i = np.arange(n, dtype=np.float64)
    return (np.sin(np.pi * (i + 0.5) / n) ** 2).astype(np.float32)


def crop_weights(positions: list[int] | tuple[int, ...], patch: int, length: int
                 ) -> list[np.ndarray]:
    """Per-position 0/1 weights assigning each pixel to the patch with the nearest centre."""
    out = []
    n = len(positions)
    for k, p in enumerate(positions):
        lo = 0 if k == 0 else (positions[k - 1] + p + patch) // 2 - p
        hi = min(patch, length - p) if k == n - 1 else (p + positions[k + 1] + patch) // 2 - p
        w = np.zeros(patch, dtype=np.float32)
        w[max(lo, 0):max(hi, 0)] = 1.0
        out.append(w)
    return out


def axis_weights(positions: list[int] | tuple[int, ...], patch: int, length: int,
                 mode: BlendMode = "hann") -> list[np.ndarray]:
    """1-D weights for each patch position along one axis."""
    if mode == "hann":
        if len(positions) == 1:  # nothing to blend with: keep every prediction at full weight
            return [np.ones(patch, dtype=np.float32)]
        w = hann_window(patch)
        return [w] * len(positions)
    if mode == "crop":
        return crop_weights(positions, patch, length)
    raise ValueError(f"unknown blend mode {mode!r}; use one of {BLEND_MODES}")
