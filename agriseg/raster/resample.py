"""Reading a raster at the model's ground resolution and writing results back on its own grid.

A model trained at 1 cm/px sees plants of a certain size in pixels; fed a 0.5 cm/px raster it
sees them twice as big and gets them wrong. When the raster's pixel size differs from the model
card's ``pixel_size_m`` by more than :data:`TOLERANCE`, :func:`plan_resample` lays a *model
grid* over the raster (same CRS and origin, the model's pixel size) and :func:`model_grid`
opens it as a GDAL warped VRT: windows are resampled on the fly as the strip reader asks for
them (average when shrinking, bilinear when enlarging), so nothing is ever resampled whole and
memory stays bounded. :func:`nearest_index` maps each input pixel to the model pixel under its
centre, with which :class:`agriseg.infer.regrid.BackToInput` writes results back on the
input's exact grid.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from agriseg.constants import RESAMPLE_MODES
from agriseg.errors import ConfigError
from agriseg.raster.units import metres_per_unit

TOLERANCE = 0.10  # relative pixel-size difference beyond which windows are resampled


@dataclass(frozen=True)
class ResamplePlan:
    """The model grid over a raster: ``factor_x``/``factor_y`` model pixels per input pixel
    (above 1: the raster is coarser than the model and is enlarged)."""

    factor_x: float
    factor_y: float
    width: int
    height: int
    transform: Affine
    input_px_m: float
    model_px_m: float

    @property
    def shrinking(self) -> bool:
        return self.factor_x * self.factor_y < 1

    def summary(self, input_shape: tuple[int, int]) -> dict[str, Any]:
        return {"applied": True, "input_pixel_size_m": round(self.input_px_m, 6),
                "model_pixel_size_m": self.model_px_m,
                "factor": round(math.sqrt(self.factor_x * self.factor_y), 4),
                "input_size": [input_shape[1], input_shape[0]],
                "model_grid_size": [self.width, self.height],
                "resampling": "average" if self.shrinking else "bilinear",
                "back_to_input": "nearest"}


def plan_resample(src: rasterio.DatasetReader, model_px_m: float | None,
                  mode: str = "auto") -> ResamplePlan | None:
    """The model grid for ``src``, or None when the raster is used as it is: ``mode`` is
    ``off``, the raster or the model has no known pixel size, or the two differ by at most
    :data:`TOLERANCE`."""
    if mode not in RESAMPLE_MODES:
        raise ConfigError(f"unknown resample mode {mode!r}; use one of "
                          f"{', '.join(RESAMPLE_MODES)}")
    if mode == "off" or not model_px_m or src.crs is None or src.transform.is_identity:
        return None
    t = src.transform
    if t.b or t.d:  # rotated or sheared: a warp would also un-rotate; leave such rasters be
        return None
    lat = src.xy(src.height // 2, src.width // 2)[1] if src.crs.is_geographic else 0.0
    mx, my = metres_per_unit(src.crs, lat)
    px_x, px_y = abs(t.a) * mx, abs(t.e) * my
    if max(abs(px_x / model_px_m - 1), abs(px_y / model_px_m - 1)) <= TOLERANCE:
        return None
    fx, fy = px_x / model_px_m, px_y / model_px_m
    width, height = max(1, math.ceil(src.width * fx)), max(1, math.ceil(src.height * fy))
    return ResamplePlan(factor_x=fx, factor_y=fy, width=width, height=height,
                        transform=t * Affine.scale(1 / fx, 1 / fy),
                        input_px_m=(px_x + px_y) / 2, model_px_m=model_px_m)


@contextlib.contextmanager
def model_grid(src: rasterio.DatasetReader, plan: ResamplePlan | None,
               threads: int | None = None) -> Iterator[rasterio.DatasetReader]:
    """``src`` itself, or a warped VRT of it on the plan's model grid (read lazily)."""
    if plan is None:
        yield src
        return
    resampling = Resampling.average if plan.shrinking else Resampling.bilinear
    with WarpedVRT(src, crs=src.crs, transform=plan.transform, width=plan.width,
                   height=plan.height, resampling=resampling,
                   warp_extras={"NUM_THREADS": threads or "ALL_CPUS"}) as vrt:
        yield vrt


def nearest_index(n: int, factor: float, limit: int) -> np.ndarray:
    """For each of ``n`` input pixels along an axis, the model pixel under its centre
    (``factor`` model pixels per input pixel, ``limit`` model pixels)."""
    idx = np.floor((np.arange(n) + 0.5) * factor).astype(np.int64)
    return np.minimum(idx, limit - 1)
