"""Bringing imagery of another bit depth or value range onto the range a model was trained on.

A model whose normalization is in 8-bit units gets nonsense from a 16-bit or float raster. An
:class:`InputScaling` maps raster values linearly from ``low .. high`` (per band) onto the
model's ``target_low .. target_high`` and clips there, before the card's normalization. The
raster's range is either given (``MIN,MAX``) or measured by :func:`percentile_range`: the
2nd and 98th percentiles of each band over the raster's overviews, or over a fixed, strided
sample of small windows when it has none — never a full read, so a 100 GB mosaic costs the
same as a small one. No-data (nodata values, masks, NaN) is left out of the statistics and
stays no-data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from agriseg.errors import RasterError
from agriseg.raster.io import MaskSource, valid_pixels

SAMPLE_PX = 1 << 20  # pixels per band the statistics are computed on (about)
SAMPLE_WINDOW = 64  # side of each sampled window when the raster has no overviews


@dataclass(frozen=True)
class InputScaling:
    """``low .. high`` mapped linearly onto ``target_low .. target_high``, per band, then
    clipped to ``limits`` (the values the model's dtype can hold; the tails beyond the
    percentiles are kept, as the model saw them in training)."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    target_low: tuple[float, ...]
    target_high: tuple[float, ...]
    mode: str  # "auto" (measured percentiles) or "given" (MIN,MAX)
    source: str  # where the statistics came from
    limits: tuple[float, float] = (-math.inf, math.inf)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """``(bands, ...)`` raster values in the model's units, float32 (NaN stays NaN)."""
        shape = (-1,) + (1,) * (data.ndim - 1)
        low = np.asarray(self.low, dtype=np.float32).reshape(shape)
        tlo = np.asarray(self.target_low, dtype=np.float32).reshape(shape)
        thi = np.asarray(self.target_high, dtype=np.float32).reshape(shape)
        span = np.asarray(self.high, dtype=np.float32).reshape(shape) - low
        gain = (thi - tlo) / np.where(span > 0, span, 1)
        out = data.astype(np.float32)
        out -= low
        out *= gain
        out += tlo
        if np.isfinite(self.limits).any():
            np.clip(out, *self.limits, out=out)
        return out

    def summary(self) -> dict[str, Any]:
        return {"mode": self.mode, "source": self.source,
                "low": [_round(v) for v in self.low], "high": [_round(v) for v in self.high],
                "target_low": [_round(v) for v in self.target_low],
                "target_high": [_round(v) for v in self.target_high],
                "clip": [v if math.isfinite(v) else None for v in self.limits]}


def _round(v: float) -> float:
    return float(f"{v:.6g}")


def percentile_range(src: rasterio.DatasetReader, indexes: Sequence[int], mask: MaskSource,
                     percentiles: tuple[float, float] = (2.0, 98.0)
                     ) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """Per-band low and high percentiles of the valid pixels, and where they were read from."""
    values, source = sample_values(src, indexes, mask)
    lows, highs = [], []
    for i, band in enumerate(values):
        band = band[np.isfinite(band)]
        if not band.size:
            raise RasterError(f"{src.name}: band {indexes[i]} has no valid pixels to measure "
                              "its value range; give one with --input-range MIN,MAX")
        lo, hi = np.percentile(band, percentiles)
        if not hi > lo:  # a flat band: keep its value inside the range instead of dividing by 0
            lo, hi = float(band.min()), float(band.max())
            if not hi > lo:
                hi = lo + 1.0
        lows.append(float(lo))
        highs.append(float(hi))
    return tuple(lows), tuple(highs), source


def sample_values(src: rasterio.DatasetReader, indexes: Sequence[int], mask: MaskSource
                  ) -> tuple[np.ndarray, str]:
    """``(bands, n)`` float64 values of about :data:`SAMPLE_PX` pixels, NaN where no-data."""
    overviews = src.overviews(indexes[0])
    if src.width * src.height <= SAMPLE_PX:
        data = src.read(list(indexes))
        valid = mask.valid(src, data, indexes, Window(0, 0, src.width, src.height))
        return _masked(data, valid), "whole raster"
    if overviews:
        # the finest overview that is still at most ~4x the sample: GDAL reads only that level
        factor = min((f for f in overviews if src.width * src.height / f**2 <= 4 * SAMPLE_PX),
                     default=max(overviews))
        shape = (max(1, src.height // factor), max(1, src.width // factor))
        data = src.read(list(indexes), out_shape=(len(indexes), *shape),
                        resampling=Resampling.nearest)
        valid = valid_pixels(data, mask.nodata)
        if mask.read_mask_band:
            valid &= src.read_masks(indexes[0], out_shape=shape,
                                    resampling=Resampling.nearest) > 0
        return _masked(data, valid), f"overview 1/{factor}"
    return _window_sample(src, indexes, mask)


def _window_sample(src: rasterio.DatasetReader, indexes: Sequence[int], mask: MaskSource
                   ) -> tuple[np.ndarray, str]:
    """Small windows on a regular lattice over the whole raster."""
    side = min(SAMPLE_WINDOW, src.width, src.height)
    n = max(1, int(math.sqrt(SAMPLE_PX / side**2)))
    xs = np.unique(np.linspace(0, src.width - side, min(n, src.width // side)).astype(int))
    ys = np.unique(np.linspace(0, src.height - side, min(n, src.height // side)).astype(int))
    parts = []
    for y in ys:
        for x in xs:
            win = Window(int(x), int(y), side, side)
            data = src.read(list(indexes), window=win)
            parts.append(_masked(data, mask.valid(src, data, indexes, win)))
    return np.concatenate(parts, axis=1), f"sample of {len(xs) * len(ys)} windows of {side} px"


def _masked(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = data.reshape(data.shape[0], -1).astype(np.float64)
    out[:, ~valid.ravel()] = np.nan
    return out
