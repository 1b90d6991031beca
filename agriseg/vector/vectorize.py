"""Class mask in, field polygons out: sieve, polygonize with seams merged, simplify, export.

The mask is read in strips (twice when small regions are sieved) so memory is bounded by the
strip size and the number of polygons, never by the raster. Polygons are built in pixel
coordinates, where shared boundaries are exact, and mapped to the raster's CRS at the end.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio.windows import Window
from tqdm import tqdm

from agriseg.constants import BACKGROUND, NODATA
from agriseg.errors import ConfigError, RasterError
from agriseg.options import VectorizeOptions, with_options
from agriseg.raster.io import gdal_env, open_raster, pixel_size_m
from agriseg.raster.units import M_PER_DEG_LAT, row_pixel_areas_m2
from agriseg.vector.attributes import (
    class_names_from_tags,
    mask_class_styles,
    metric_area_perimeter,
)
from agriseg.vector.coverage import Junctions, match_vertices
from agriseg.vector.export import DEFAULT_LAYER, format_for, polygon_sink
from agriseg.vector.polygonize import Regions, polygonize_strips, valid
from agriseg.vector.sieve import sieve_strips
from agriseg.vector.simplify import simplify_coverage

log = logging.getLogger("agriseg")
STRIP_PIXELS = 2**21  # ~2 Mpx a strip: label and polygonize buffers stay small at any width
CHUNK_POLYGONS = 20_000  # polygons per write: bounds memory, amortizes the per-write cost


@dataclass
class VectorizeResult:
    path: Path
    format: str
    polygons: int
    polygons_per_class: dict[str, int]
    area_m2_per_class: dict[str, float]
    seconds: float
    pixels_per_class: dict[str, int] = field(default_factory=dict)
    pixel_area_m2_per_class: dict[str, float] = field(default_factory=dict)
    nodata_pixels: int = 0
    exported: list[str] = field(default_factory=list)  # the classes turned into polygons
    layer: str | None = None  # the layer's name (formats with layers)


def vectorize_mask(mask: str | os.PathLike, dst: str | os.PathLike, *,
                   options: VectorizeOptions | None = None,
                   confidence: str | os.PathLike | None = None, fmt: str | None = None,
                   layer: str | None = None, source: str | None = None, overwrite: bool = False,
                   strip_rows: int | None = None, workers: int | None = None,
                   progress: bool = False, **option_kw: Any) -> VectorizeResult:
    """Polygonize the class mask ``mask`` and write the polygons to ``dst``.

    Parameters
    ----------
    mask, dst
        A uint8 class mask (as ``predict`` writes it; 255 = no data) and the polygon file to
        write; its format follows the suffix unless ``fmt`` (gpkg, shp, geojson, fgb,
        parquet) is given.
    options, **option_kw
        :class:`~agriseg.options.VectorizeOptions` and/or its fields as keywords: ``classes``
        to export (names or ids; default all but background), ``min_area_m2`` (sieve),
        ``fill_holes_m2``, ``simplify_m`` (neighbours keep identical shared edges),
        ``connectivity`` (4 or 8), ``crs`` (reproject on export).
    confidence
        A raster on the mask's grid: adds each polygon's mean (``mean_conf``).
    layer, source
        Layer name (default ``<source stem>_class_polygons``, see :func:`default_layer`);
        the ``source`` attribute (default: the mask's file name).
    overwrite, progress
        Replace an existing output; show a progress bar on stderr.
    strip_rows, workers
        Rows per strip (default about 2 Mpx per strip, so memory stays flat for wide rasters
        too); worker processes polygonizing strips (default one per core, up to 4, for rasters
        of at least four strips; 0 runs everything in this process).

    Returns
    -------
    VectorizeResult
        Path, format, polygon count, and per class: polygons and their area in m² (as
        written: after sieving and simplification), and the mask's pixels and their ground
        area in m² (every class, background included, before sieving).

    Raises
    ------
    AgrisegError
        Not a class mask, unknown class, bad option, output exists without ``overwrite``.
    """
    t0 = time.perf_counter()
    opts = with_options(VectorizeOptions, options, option_kw)
    fmt = format_for(dst, fmt)
    if strip_rows is not None and strip_rows < 1:
        raise ConfigError(f"strip rows must be >= 1, got {strip_rows}")
    with open_raster(mask) as src, gdal_env(src):
        _check_mask(src)
        names = class_names_from_tags(src.tags(), list(range(NODATA)))
        strip_rows = strip_rows or auto_strip_rows(src.width)
        if workers is None:  # processes pay off once there are a few strips to share out
            workers = min(os.cpu_count() or 1, 4) if src.height >= 4 * strip_rows else 0
            if multiprocessing.current_process().daemon:
                workers = 0  # a daemon (a Dask worker, a pool's worker) may not have children
        junctions, pixels = Junctions(src.width, src.height), _PixelAreas(src)
        export = _select(opts.classes, names)
        regions = _regions(src, confidence, export, opts, strip_rows, workers, progress,
                           junctions, pixels)
        source = source or Path(mask).name
        frame = functools.partial(_to_frame, src=src, names=names, junctions=junctions,
                                  with_conf=confidence is not None, simplify_m=opts.simplify_m,
                                  source=source)
        classes = mask_class_styles(src.tags(), _colormap(src), names, export)
        layer = layer or default_layer(source)
        with polygon_sink(dst, source_crs=src.crs, fmt=fmt, layer=layer,
                          crs=opts.crs, overwrite=overwrite, classes=classes,
                          decimals=_decimals(src, opts.crs)) as write:
            stats = _write_chunks(regions, frame, write, opts.simplify_m)
    named = {i: n for i, n in names.items() if pixels.count[i] or n != f"class_{i}"}
    return VectorizeResult(path=Path(dst), format=fmt, polygons=stats.polygons,
                           polygons_per_class=stats.count, area_m2_per_class=stats.area,
                           seconds=time.perf_counter() - t0,
                           pixels_per_class={n: int(pixels.count[i]) for i, n in named.items()},
                           pixel_area_m2_per_class={n: float(pixels.area[i])
                                                    for i, n in named.items()},
                           nodata_pixels=int(pixels.count[NODATA]),
                           exported=[n for i, n in named.items() if i in export],
                           layer=None if fmt in ("shp", "parquet") else layer)


def default_layer(source: str) -> str:
    """The layer name for polygons of the raster ``source``: ``<stem>_class_polygons``, so a
    layer list says which field and what it holds (characters other than letters, digits and
    ``_`` become ``_``)."""
    stem = re.sub(r"\W+", "_", Path(source).stem).strip("_")
    return f"{stem}_class_polygons" if stem else DEFAULT_LAYER


def _colormap(src: rasterio.DatasetReader) -> dict[int, tuple[int, ...]] | None:
    try:
        return src.colormap(1)
    except ValueError:  # no colour table
        return None


def _write_chunks(regions: Iterator[Regions], frame: Callable[[Regions], gpd.GeoDataFrame],
                  write: Callable[[gpd.GeoDataFrame], None], simplify_m: float) -> _Stats:
    """Attribute and write the regions in chunks (one chunk when simplifying: coverage
    simplification needs the whole coverage); an empty layer keeps its schema."""
    stats = _Stats()
    for chunk in _chunked(regions, None if simplify_m > 0 else CHUNK_POLYGONS):
        gdf = frame(chunk)
        stats.add(gdf)
        write(gdf)
    if not stats.polygons:
        write(frame(Regions.concat([])))
    return stats


@dataclass
class _Stats:
    polygons: int = 0
    count: dict[str, int] = field(default_factory=dict)
    area: dict[str, float] = field(default_factory=dict)

    def add(self, gdf: gpd.GeoDataFrame) -> None:
        self.polygons += len(gdf)
        per_class = gdf.groupby("class_name")["area_m2"].agg(["size", "sum"])
        for name, (n, area) in per_class.iterrows():
            self.count[name] = self.count.get(name, 0) + int(n)
            self.area[name] = self.area.get(name, 0.0) + float(area)


class _PixelAreas:
    """Pixels and their ground area (m²) per class value, counted once per row as the mask
    is first read (sieving reads it twice)."""

    def __init__(self, src: rasterio.DatasetReader) -> None:
        self.crs, self.transform = src.crs, src.transform
        self.count = np.zeros(256, dtype=np.int64)
        self.area = np.zeros(256)
        self.next_row = 0

    def add(self, y0: int, rows: np.ndarray) -> None:
        skip = self.next_row - y0
        if skip >= len(rows) or skip < 0:  # read before, or not the next rows
            return
        rows = rows[skip:]
        n = len(rows)
        area = row_pixel_areas_m2(self.crs, self.transform,
                                  np.arange(self.next_row, self.next_row + n))
        if np.all(area == area[0]):  # a projected CRS: one pixel area for all
            count = np.bincount(rows.ravel(), minlength=256)
            self.count += count
            self.area += count * area[0]
        else:
            per_row = np.bincount((rows.astype(np.int32) + 256 * np.arange(n)[:, None]).ravel(),
                                  minlength=256 * n).reshape(n, 256)
            self.count += per_row.sum(axis=0)
            self.area += area @ per_row
        self.next_row += n


def _decimals(src: rasterio.DatasetReader, crs) -> int | None:
    """Decimals for GeoJSON in WGS84: 7 (about 1 cm), or more when the pixels are so fine
    that rounding to 7 would move vertices by more than 1/20 of a pixel (7 decimals turned
    one-pixel weeds of a 1 cm mask into lines); None for other outputs."""
    px = pixel_size_m(src)
    if crs is None or px is None:
        return None
    deg = px / M_PER_DEG_LAT  # a degree of latitude is the shortest: the finest need
    return max(7, int(np.ceil(-np.log10(deg / 20))))


def _chunked(batches: Iterator[Regions], limit: int | None) -> Iterator[Regions]:
    """Regroup per-strip batches into chunks of at least ``limit`` regions (None: one)."""
    parts: list[Regions] = []
    size = 0
    for batch in batches:
        parts.append(batch)
        size += len(batch)
        if limit is not None and size >= limit:
            yield Regions.concat(parts)
            parts, size = [], 0
    if parts:
        yield Regions.concat(parts)


def auto_strip_rows(width: int) -> int:
    return max(16, min(1024, STRIP_PIXELS // max(width, 1)))


def _check_mask(src: rasterio.DatasetReader) -> None:
    if src.count != 1 or src.dtypes[0] != "uint8":
        raise RasterError(f"{src.name}: not a class mask: expected 1 band of uint8 class ids "
                          f"(as written by agriseg predict), got {src.count} band(s) of "
                          f"{src.dtypes[0]}")
    if src.nodata is not None and src.nodata != NODATA:
        raise RasterError(f"{src.name}: class mask nodata must be {NODATA} or unset, got "
                          f"{src.nodata}")


def _select(classes: Sequence[str | int] | None, names: dict[int, str]) -> list[int]:
    if not classes:
        return [i for i in names if i != BACKGROUND]  # every class id the mask can hold
    by_name = {n.lower(): i for i, n in names.items()}
    out = []
    for c in classes:
        key = str(c).strip()
        if key.isdigit() and 0 <= int(key) < NODATA:
            out.append(int(key))
        elif key.lower() in by_name:
            out.append(by_name[key.lower()])
        else:
            named = {i: n for i, n in names.items() if n != f"class_{i}"}
            valid = ", ".join(f"{n} ({i})" for i, n in named.items()) or "ids 0-254"
            raise ConfigError(f"unknown class {key!r}; the mask's classes are {valid}")
    return sorted(set(out))


def _pixel_area_m2(src: rasterio.DatasetReader) -> float:
    px = pixel_size_m(src)
    if px is None:
        return abs(src.transform.a * src.transform.e - src.transform.b * src.transform.d)
    return px * px


def _px(area_m2: float, px_area_m2: float) -> int:
    return int(np.ceil(area_m2 / px_area_m2 - 1e-9)) if area_m2 > 0 else 0


def _regions(src, confidence, export, opts: VectorizeOptions, strip_rows, workers,
             progress, junctions: Junctions, pixels: _PixelAreas) -> Iterator[Regions]:
    px_area = _pixel_area_m2(src)
    min_px, fill_px = _px(opts.min_area_m2, px_area), _px(opts.fill_holes_m2, px_area)
    connectivity = opts.connectivity
    with contextlib.ExitStack() as stack:
        conf_src = None
        if confidence is not None:
            conf_src = stack.enter_context(open_raster(confidence))
            if (conf_src.shape, conf_src.transform) != (src.shape, src.transform):
                raise RasterError(f"{confidence}: confidence raster is not on the mask's grid "
                                  f"({conf_src.width}x{conf_src.height} vs "
                                  f"{src.width}x{src.height})")
        bar = stack.enter_context(tqdm(total=src.height, unit="row", desc="vectorize",
                                       disable=not progress, file=sys.stderr,
                                       dynamic_ncols=True))

        def read(y0: int, n: int) -> np.ndarray:
            rows = src.read(1, window=Window(0, y0, src.width, n))
            pixels.add(y0, rows)  # the mask as written, before any sieving
            return rows

        if min_px > 1 or fill_px > 1:
            strips = sieve_strips(read, src.height, src.width, min_px=min_px, fill_px=fill_px,
                                  connectivity=connectivity, nodata=NODATA,
                                  background=BACKGROUND, strip_rows=strip_rows)
        else:
            strips = ((y, read(y, min(strip_rows, src.height - y)))
                      for y in range(0, src.height, strip_rows))

        def with_values() -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
            for y0, rows in strips:
                vals = None
                if conf_src is not None:
                    vals = conf_src.read(1, window=Window(0, y0, src.width, rows.shape[0]))
                bar.update(rows.shape[0])
                yield y0, rows, vals

        yield from polygonize_strips(with_values(), classes=export, connectivity=connectivity,
                                     workers=workers, junctions=junctions)


def _to_frame(regions: Regions, *, src, names: dict[int, str], junctions: Junctions,
              with_conf: bool, simplify_m: float, source: str) -> gpd.GeoDataFrame:
    """Attribute a chunk of regions; geometries are made valid, edge-matched (and simplified)
    in pixel coordinates, then mapped to the raster's CRS vertex by vertex."""
    geoms = regions.geoms.copy()
    joined = ~regions.matched  # joined across seams: not yet valid and edge-matched
    if joined.any():
        geoms[joined] = match_vertices(valid(geoms[joined]), junctions)
    if simplify_m > 0:
        px = pixel_size_m(src) or abs(src.transform.a) or 1.0  # no CRS: raster units
        geoms = simplify_coverage(geoms, regions.class_ids, simplify_m / px, junctions)
    t = src.transform
    geoms = shapely.transform(geoms, lambda xy: np.column_stack(
        (t.a * xy[:, 0] + t.b * xy[:, 1] + t.c, t.d * xy[:, 0] + t.e * xy[:, 1] + t.f)))
    area, perim = metric_area_perimeter(geoms, src.crs)
    ids = regions.class_ids.astype(np.int32)
    data = {
        "class_id": ids,
        "class_name": [names.get(int(i), f"class_{i}") for i in ids],
        "area_m2": area, "area_ha": area / 10_000.0, "perim_m": perim,
    }
    if with_conf:
        with np.errstate(invalid="ignore", divide="ignore"):
            data["mean_conf"] = np.where(regions.value_counts > 0,
                                         regions.value_sums / regions.value_counts, np.nan)
    data["source"] = [source] * len(ids)
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=src.crs), crs=src.crs)
