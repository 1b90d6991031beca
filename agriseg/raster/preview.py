"""A quick-look PNG: the class map laid over the image, for reports, READMEs and e-mails.

Read at a reduced resolution (GDAL overviews or decimated reads), so a preview of a 50,000 px
orthomosaic costs about as much as one of a sample tile.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning

from agriseg.constants import NODATA
from agriseg.outputs import atomic_output


def _stretch(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint8 as is; other dtypes by one 1-99 % stretch shared by all bands (keeps the hue).

    Only valid, finite values set the stretch; NaN and no-data come out black (and are
    darkened with the mask's no-data anyway).
    """
    if data.dtype == np.uint8:
        return data
    vals = data[:, valid]
    vals = vals[np.isfinite(vals)] if vals.dtype.kind == "f" else vals
    if vals.size == 0:
        return np.zeros(data.shape, np.uint8)
    lo, hi = np.percentile(vals, [1, 99])
    scaled = (data.astype(np.float32) - lo) / max(float(hi - lo), 1e-6)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=1.0, neginf=0.0)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def display_bands(bands: Sequence[int], count: int) -> list[int]:
    """Three bands to show as red, green, blue: the first three of ``bands`` that exist, or
    one band as grey when fewer than three exist (a red+NIR raster shows its first band)."""
    usable = [b for b in bands if 1 <= b <= count] or [1]
    return usable[:3] if len(usable) >= 3 else [usable[0]] * 3


def render_preview(image: str | os.PathLike, mask: str | os.PathLike,
                   dst: str | os.PathLike, *, colors: Sequence[Sequence[int]],
                   rgb_bands: Sequence[int] = (1, 2, 3), max_px: int = 1024,
                   opacity: float = 0.6, overwrite: bool = True) -> None:
    """Write ``dst`` (PNG): the image with non-background classes tinted by their colours.

    Any band count works: ``rgb_bands`` picks the bands shown (see :func:`display_bands`).
    Image no-data (any band's mask) and mask no-data are darkened.
    """
    with rasterio.open(image) as src, rasterio.open(mask) as msk:
        scale = min(1.0, max_px / max(src.width, src.height))
        shape = (max(1, round(src.height * scale)), max(1, round(src.width * scale)))
        bands = display_bands(rgb_bands, src.count)
        data = src.read(bands, out_shape=(3, *shape), resampling=Resampling.average)
        valid = src.dataset_mask(out_shape=shape, resampling=Resampling.nearest) > 0
        classes = msk.read(1, out_shape=shape, resampling=Resampling.nearest)
    out = _stretch(data, valid).astype(np.float32)
    for cid, color in enumerate(colors):
        if cid == 0:
            continue  # background/soil stays as photographed
        sel = classes == cid
        for k in range(3):
            out[k][sel] = (1 - opacity) * out[k][sel] + opacity * color[k]
    out[:, (classes == NODATA) | ~valid] *= 0.35  # no-data darkened
    with atomic_output(dst, overwrite=overwrite) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a PNG has no georeference
        with rasterio.open(tmp, "w", driver="PNG", width=shape[1], height=shape[0], count=3,
                           dtype="uint8") as png:
            png.write(np.clip(out, 0, 255).astype(np.uint8))
