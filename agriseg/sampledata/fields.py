"""Synthetic drone GeoTIFFs of a vegetable field, with the exact class of every pixel.

Tests, benchmarks and the committed sample tiles need rasters of any size, band set and dtype
whose truth is known to the pixel, without shipping real imagery. :func:`make_field` renders a
top-down field (textured soil, straight crop rows, weeds mostly between the rows, a bright nir
band for vegetation) strip by strip, so a 16k x 16k raster needs a few tens of MB of memory, and
every pixel is a pure function of (seed, position), so equal arguments give identical pixels.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import CRSError, NotGeoreferencedWarning
from rasterio.transform import from_origin
from rasterio.windows import Window

from agriseg.constants import NODATA, SUPPORTED_DTYPES
from agriseg.errors import ConfigError, InputNotFoundError, RasterError
from agriseg.outputs import atomic_output
from agriseg.sampledata.plants import FieldLayout
from agriseg.sampledata.render import Scene, render_window

__all__ = ["BAND_NAMES", "CLASS_COLORS", "CLASS_NAMES", "FieldLayout", "make_field",
           "make_label_polygons"]

CLASS_NAMES = ("soil", "crop", "weed")
CLASS_COLORS = ((139, 90, 43), (34, 139, 34), (220, 20, 60))
BAND_NAMES = ("red", "green", "blue", "nir")
# The provenance tag of every generated raster. It names the module's first home, and stays so
# that `make samples` keeps writing byte-identical sample tiles.
GENERATOR_TAG = "agriseg.raster.synthetic"
COMPRESSIONS = ("deflate", "lzw", "zstd", "packbits", "none")
_UINT8_WHITE = (0.45, 0.45, 0.45, 0.75)  # reflectance shown as 255, per band
_FIXED_DATE = "2000-01-01T00:00:00.000Z"
_CHUNK_ROWS, _CHUNK_PIXELS = 256, 1 << 19  # work unit, rounded to whole blocks


def make_field(
    path: str | os.PathLike, *, width: int, height: int,
    bands: Sequence[str] = ("red", "green", "blue"), dtype: str = "uint8", seed: int = 0,
    pixel_size_m: float = 0.01, crs: str | None = "EPSG:32634",
    origin: tuple[float, float] = (500000.0, 4650000.0), nodata: float | None = None,
    nodata_fraction: float = 0.0, label_path: str | os.PathLike | None = None,
    blocksize: int = 256, compress: str = "deflate", layout: FieldLayout | None = None,
) -> None:
    """Write a synthetic field GeoTIFF (and optionally its label raster) to ``path``.

    ``bands`` are any of red, green, blue, nir in the order wanted. Values are reflectance
    scaled per ``dtype``: uint8 is a display-like camera image (sqrt tone curve), uint16 and
    int16 are reflectance x 10000, float32 is reflectance 0..1. With ``nodata`` set and
    ``nodata_fraction`` > 0, an irregular cut across one corner (chosen by the seed) holds
    ``nodata`` and no valid pixel equals ``nodata``. ``label_path`` gets a uint8 raster on the
    same grid: 0 soil, 1 crop, 2 weed, 255 where the image is nodata. ``layout`` sets row
    spacing/angle, plant spacing and size, and weed density (metres).
    """
    band_idx = _check_args(width, height, bands, dtype, pixel_size_m, nodata, nodata_fraction,
                           blocksize, compress)
    if label_path is not None and Path(label_path) == Path(path):
        raise ConfigError(f"label_path {label_path} is the image path; choose another file")
    scene = Scene(width, height, float(pixel_size_m), int(seed), layout or FieldLayout(),
                  float(nodata_fraction))
    profile = _profile(width, height, dtype, crs, origin, pixel_size_m, blocksize, compress)
    photometric = {"photometric": "RGB"} if tuple(bands[:3]) == BAND_NAMES[:3] else {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        tmp = stack.enter_context(atomic_output(path, overwrite=True))
        dst = stack.enter_context(rasterio.open(
            tmp, "w", count=len(bands), nodata=nodata, **profile, **photometric))
        for i, name in enumerate(bands, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(generator=GENERATOR_TAG, seed=str(seed))
        lab = None
        if label_path is not None:
            ltmp = stack.enter_context(atomic_output(label_path, overwrite=True))
            lab = stack.enter_context(_open_labels(ltmp, profile))
        for window, image, labels in _chunks(scene, blocksize, band_idx, dtype, nodata):
            dst.write(image, window=window)
            if lab is not None:
                lab.write(labels, 1, window=window)


def _check_args(width: int, height: int, bands: Sequence[str], dtype: str, pixel_size_m: float,
                nodata: float | None, nodata_fraction: float, blocksize: int,
                compress: str) -> list[int]:
    """Validate make_field arguments; return the index of each band in the rendered stack."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ConfigError(f"{name}={value!r} must be a positive whole number of pixels")
    if isinstance(bands, str) or not bands:
        raise ConfigError(f"bands={bands!r} must be a non-empty sequence of {BAND_NAMES}")
    for band in bands:
        if band not in BAND_NAMES:
            raise ConfigError(f"unknown band {band!r}; use any of {', '.join(BAND_NAMES)}")
    if len(set(bands)) != len(bands):
        raise ConfigError(f"bands={tuple(bands)} repeats a band; name each band once")
    if dtype not in SUPPORTED_DTYPES:
        raise ConfigError(f"unsupported dtype {dtype!r}; use one of {', '.join(SUPPORTED_DTYPES)}")
    if not (isinstance(pixel_size_m, (int, float)) and math.isfinite(pixel_size_m)
            and pixel_size_m > 0):
        raise ConfigError(f"pixel_size_m={pixel_size_m!r} must be a positive number of metres")
    if not 0.0 <= nodata_fraction < 1.0:
        raise ConfigError(f"nodata_fraction={nodata_fraction!r} must be in [0, 1)")
    if nodata_fraction > 0 and nodata is None:
        raise ConfigError(f"nodata_fraction={nodata_fraction} needs a nodata value; pass nodata")
    if nodata is not None and dtype != "float32":
        info = np.iinfo(dtype)
        if not (float(nodata).is_integer() and info.min <= nodata <= info.max):
            raise ConfigError(f"nodata={nodata!r} does not fit {dtype}; use an integer in "
                              f"{info.min}..{info.max}")
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize <= 0 \
            or blocksize % 16:
        raise ConfigError(f"blocksize={blocksize!r} must be a positive multiple of 16, e.g. 256")
    if compress.lower() not in COMPRESSIONS:
        raise ConfigError(f"unsupported compress {compress!r}; use one of "
                          f"{', '.join(COMPRESSIONS)}")
    return [BAND_NAMES.index(b) for b in bands]


def _profile(width: int, height: int, dtype: str, crs: str | None, origin: tuple[float, float],
             pixel_size_m: float, blocksize: int, compress: str) -> dict:
    """Creation options shared by the image and its labels: tiled, compressed, same grid."""
    profile: dict = {"driver": "GTiff", "width": width, "height": height, "dtype": dtype,
                     "tiled": True, "blockxsize": blocksize, "blockysize": blocksize,
                     "num_threads": "ALL_CPUS", "bigtiff": "IF_SAFER"}
    if compress.lower() != "none":
        profile["compress"] = compress.lower()
        profile["predictor"] = 3 if dtype == "float32" else 2
    if crs is not None:
        try:
            profile["crs"] = CRS.from_user_input(crs)
        except CRSError as exc:
            raise ConfigError(f"crs={crs!r} is not a known CRS ({exc}); use e.g. "
                              f"'EPSG:32634' or None") from exc
        profile["transform"] = from_origin(origin[0], origin[1], pixel_size_m, pixel_size_m)
    return profile


def _open_labels(path: Path, profile: dict) -> rasterio.io.DatasetWriter:
    """Create the label raster: uint8, nodata 255, class colormap and names as a tag."""
    opts = {**profile, "dtype": "uint8", "count": 1, "nodata": NODATA,
            "photometric": "palette"}
    if "predictor" in opts:
        opts["predictor"] = 1  # class ids do not predict from their neighbour's difference
    lab = rasterio.open(path, "w", **opts)
    cmap = {i: (*rgb, 255) for i, rgb in enumerate(CLASS_COLORS)}
    cmap[NODATA] = (0, 0, 0, 0)
    lab.write_colormap(1, cmap)
    lab.set_band_description(1, "class")
    lab.update_tags(classes=json.dumps(list(CLASS_NAMES)),
                    class_colors=json.dumps([list(c) for c in CLASS_COLORS]))
    return lab


def _chunks(scene: Scene, blocksize: int, band_idx: list[int], dtype: str,
            nodata: float | None) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
    """Render block-aligned windows in raster order on a small thread pool.

    Windows of about half a million pixels keep memory flat whatever the raster's height and
    width; a bounded look-ahead lets numpy (which releases the GIL) render the next windows
    while GDAL compresses and writes the current one.
    """
    rows = blocksize * max(1, math.ceil(_CHUNK_ROWS / blocksize))
    cols = blocksize * max(1, _CHUNK_PIXELS // (rows * blocksize))
    windows = ((r, c) for r in range(0, scene.height, rows) for c in range(0, scene.width, cols))

    def work(row0: int, col0: int) -> tuple[Window, np.ndarray, np.ndarray]:
        win = Window(col0, row0, min(cols, scene.width - col0), min(rows, scene.height - row0))
        refl, labels = render_window(scene, row0, win.height, col0, win.width)
        image = _to_dtype(refl, band_idx, dtype, nodata, labels == NODATA)
        return win, image, labels

    workers = max(1, min(2, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for row0, col0 in windows:
            pending.append(pool.submit(work, row0, col0))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _to_dtype(refl: np.ndarray, band_idx: list[int], dtype: str, nodata: float | None,
              nodata_mask: np.ndarray) -> np.ndarray:
    """Pick the bands, scale reflectance to ``dtype``; put ``nodata`` in the mask only.

    uint8 mimics a camera: a sqrt tone curve with a per-band white point, higher for nir so
    bright vegetation does not clip.
    """
    refl = np.maximum(refl[band_idx], np.float32(0.0))
    if dtype == "float32":
        out = refl
    else:
        if dtype == "uint8":
            gain = np.asarray([1.0 / _UINT8_WHITE[i] for i in band_idx], dtype=np.float32)
            scaled = np.sqrt(refl * gain[:, None, None]) * np.float32(255.0)
        else:
            scaled = refl * np.float32(10000.0)
        info = np.iinfo(dtype)
        out = np.clip(np.rint(scaled), info.min, info.max).astype(dtype)
    if nodata is None:
        return out
    if math.isnan(nodata):
        out[:, nodata_mask] = np.nan
        return out
    clash = (out == out.dtype.type(nodata)) & ~nodata_mask
    if clash.any():
        bump = -1 if dtype != "float32" and nodata == np.iinfo(dtype).max else 1
        if dtype == "float32":
            out[clash] = np.nextafter(np.float32(nodata), np.float32(np.inf))
        else:
            out[clash] = nodata + bump
    out[:, nodata_mask] = nodata
    return out


def make_label_polygons(label_path: str | os.PathLike, out_path: str | os.PathLike,
                        layer: str = "labels") -> None:
    """Polygonize the crop (1) and weed (2) pixels of a label raster into a GeoPackage.

    Fields ``class_id`` (int) and ``class_name``; the raster's CRS is kept; soil and nodata
    make no polygons. The whole raster is read at once: this is for sample and test rasters
    (the streaming, seam-merging vectorizer lives in ``agriseg.vector``).
    """
    import geopandas
    import pyogrio
    import shapely.geometry
    from rasterio.features import shapes

    if not Path(label_path).exists():
        raise InputNotFoundError(f"{label_path}: label raster not found")
    with rasterio.open(label_path) as src:
        if src.dtypes[0] != "uint8":
            raise RasterError(f"{label_path}: labels must be uint8, found {src.dtypes[0]}")
        labels, transform, crs = src.read(1), src.transform, src.crs
    mask = (labels == 1) | (labels == 2)
    geoms, ids = [], []
    for geom, value in shapes(labels, mask=mask, transform=transform, connectivity=4):
        geoms.append(shapely.geometry.shape(geom))
        ids.append(int(value))
    frame = geopandas.GeoDataFrame(
        {"class_id": np.asarray(ids, dtype=np.int32),
         "class_name": [CLASS_NAMES[i] for i in ids]},
        geometry=geopandas.GeoSeries(geoms, crs=crs), crs=crs)
    # GeoPackages record a "last change" time; a fixed one keeps regenerated samples
    # byte-identical, so re-running the sample command shows no spurious diff.
    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": _FIXED_DATE})
    try:
        with atomic_output(out_path, overwrite=True) as tmp:
            pyogrio.write_dataframe(frame, tmp, layer=layer, driver="GPKG",
                                    geometry_type="Polygon")
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})
