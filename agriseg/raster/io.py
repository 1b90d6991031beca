"""Opening and checking input rasters: one clear error per bad file, band selection, masks.

Everything that decides *which* pixels and bands feed a model lives here, so ``info``,
``predict`` and ``tile`` agree on it: band order comes from the model card (matched by band
description, else by position), and nodata, alpha bands and internal masks all end up as one
boolean "valid" mask.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import RasterioIOError

from agriseg.constants import SUPPORTED_DTYPES
from agriseg.errors import InputNotFoundError, ModelMismatchError, RasterError, first_line
from agriseg.raster.units import metres_per_unit


@contextlib.contextmanager
def open_raster(path: str | os.PathLike) -> Iterator[rasterio.DatasetReader]:
    """Open ``path`` for reading, turning every way it can be unusable into one clear error."""
    p = Path(path)
    if not p.exists() and "://" not in str(path) and not str(path).startswith("/vsi"):
        raise InputNotFoundError(f"{path}: file not found")
    if p.is_dir():
        raise RasterError(f"{path}: is a folder, expected a raster file")
    try:
        src = rasterio.open(path)
    except RasterioIOError as e:
        msg = first_line(e, "unreadable")
        raise RasterError(f"{path}: not a readable raster ({msg})") from None
    try:
        if src.count == 0 or src.width == 0 or src.height == 0:
            raise RasterError(f"{path}: raster is empty ({src.count} bands, "
                              f"{src.width}x{src.height} px)")
        dtype = src.dtypes[0]
        if dtype not in SUPPORTED_DTYPES:
            raise RasterError(f"{path}: data type {dtype} is not supported "
                              f"(supported: {', '.join(SUPPORTED_DTYPES)})")
        yield src
    finally:
        src.close()


def band_names(src: rasterio.DatasetReader) -> list[str]:
    """Band names: the band description, else the colour interpretation, else ``band<N>``."""
    names = []
    for i, (desc, ci) in enumerate(zip(src.descriptions, src.colorinterp, strict=True), 1):
        if desc:
            names.append(desc.strip().lower())
        elif ci not in (ColorInterp.undefined, ColorInterp.gray, ColorInterp.palette):
            names.append(ci.name.lower())
        else:
            names.append(f"band{i}")
    return names


def alpha_band(src: rasterio.DatasetReader) -> int | None:
    """1-based index of the alpha band, if the raster has one."""
    for i, ci in enumerate(src.colorinterp, 1):
        if ci == ColorInterp.alpha:
            return i
    return None


def check_band_indexes(src: rasterio.DatasetReader, bands: Sequence[int]) -> list[int]:
    """``bands`` (1-based) as a list, or an error naming the first that does not exist."""
    bad = [b for b in bands if not 1 <= b <= src.count]
    if bad:
        raise ModelMismatchError(f"{src.name}: band {bad[0]} does not exist (raster has bands "
                                 f"1..{src.count})")
    return list(bands)


def select_bands(src: rasterio.DatasetReader, wanted: Sequence[str],
                 bands: Sequence[int] | None = None) -> list[int]:
    """1-based band indexes, in the model's order, for a model that takes ``wanted`` bands.

    ``bands`` (user's explicit choice) wins; otherwise bands are matched by name, and failing
    that the non-alpha bands are taken in file order when their count fits.
    """
    name = src.name
    if bands:
        check_band_indexes(src, bands)
        if len(bands) != len(wanted):
            raise ModelMismatchError(f"{name}: {len(bands)} bands selected but the model takes "
                                     f"{len(wanted)} ({', '.join(wanted)})")
        return list(bands)
    names = band_names(src)
    wanted_l = [w.lower() for w in wanted]
    if all(w in names for w in wanted_l):
        return [names.index(w) + 1 for w in wanted_l]
    alpha = alpha_band(src)
    data_bands = [i for i in range(1, src.count + 1) if i != alpha]
    if len(data_bands) == len(wanted):
        return data_bands
    raise ModelMismatchError(
        f"{name}: raster has {len(data_bands)} data bands ({', '.join(names)}) but the model "
        f"takes {len(wanted)} ({', '.join(wanted)}); choose them with --bands, e.g. --bands "
        f"{','.join(str(i) for i in range(1, len(wanted) + 1))}")


@dataclass(frozen=True)
class MaskSource:
    """How to tell valid pixels from no-data for a set of bands.

    ``nodata`` values are compared per band (NaN counts as no-data for float rasters); when the
    raster has an alpha band or an internal/per-dataset mask, GDAL's mask band is read as well.
    A pixel is no-data when *all* selected bands are no-data or the mask says so — the GDAL
    convention, so a black-but-valid pixel in one band is not lost.
    """

    nodata: float | None
    read_mask_band: bool

    @classmethod
    def of(cls, src: rasterio.DatasetReader, indexes: Sequence[int]) -> MaskSource:
        flags = src.mask_flag_enums[indexes[0] - 1]
        read_mask = (MaskFlags.alpha in flags or MaskFlags.per_dataset in flags) \
            and MaskFlags.all_valid not in flags and MaskFlags.nodata not in flags
        return cls(nodata=src.nodata, read_mask_band=read_mask)

    def valid(self, src: rasterio.DatasetReader, data: np.ndarray, indexes: Sequence[int],
              window: rasterio.windows.Window) -> np.ndarray:
        """Boolean (rows, cols) mask of valid pixels for ``data`` read from ``window``."""
        valid = valid_pixels(data, self.nodata)
        if self.read_mask_band:
            valid &= src.read_masks(indexes[0], window=window) > 0
        return valid


def valid_pixels(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """``(rows, cols)`` True where any band of ``(bands, rows, cols)`` holds data: a pixel is
    no-data when every band equals ``nodata`` or, in float data, is NaN/inf."""
    invalid_band = np.zeros(data.shape, dtype=bool)
    if nodata is not None and not np.isnan(nodata):
        invalid_band |= data == np.array(nodata, dtype=data.dtype)
    if data.dtype.kind == "f":
        invalid_band |= ~np.isfinite(data)
    return ~invalid_band.all(axis=0)


def pixel_size_m(src: rasterio.DatasetReader) -> float | None:
    """Approximate ground pixel size in metres (None without georeferencing)."""
    if src.crs is None or src.transform.is_identity:
        return None
    a, e = abs(src.transform.a), abs(src.transform.e)
    lat = src.xy(src.height // 2, src.width // 2)[1] if src.crs.is_geographic else 0.0
    mx, my = metres_per_unit(src.crs, lat)
    return (a * mx + e * my) / 2


def gdal_env(src: rasterio.DatasetReader, threads: int | None = None
             ) -> contextlib.AbstractContextManager:
    """GDAL settings for streaming ``src``: a block cache for two block rows, and ``threads``.

    GDAL's default cache (5% of RAM) keeps every block already read, so memory would grow with
    the raster's size; the strip reader never goes back, so two block rows of input and output
    are all it needs. ``threads`` (default all cores) bounds GDAL's decoding, compression and
    warping threads (GDAL_NUM_THREADS). Values the user set in the environment are left alone.
    """
    options: dict[str, object] = {}
    if not os.environ.get("GDAL_CACHEMAX"):
        bh = max(src.block_shapes[0][0], 256)
        row_bytes = src.width * bh * (src.count * np.dtype(src.dtypes[0]).itemsize + 2)
        options["GDAL_CACHEMAX"] = int(64 + 2 * row_bytes / 2**20)
    if not os.environ.get("GDAL_NUM_THREADS"):
        options["GDAL_NUM_THREADS"] = str(threads) if threads else "ALL_CPUS"
    return rasterio.Env(**options)
