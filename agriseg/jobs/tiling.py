"""Cut a raster (and its labels) into georeferenced patches on the prediction grid.

The patches sit exactly where ``predict`` puts its windows (same :func:`make_grid`), so a model
trained on them sees the same framing at inference. The image is streamed with
:class:`StripReader` (each source row read once); a patch that is entirely no-data is skipped.
Each patch is a small GeoTIFF with the source's bands, dtype, nodata and the window's transform,
and ``index.gpkg`` lists their footprints, so the set can be filtered or split in any GIS.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient
from tqdm import tqdm

from agriseg.constants import NODATA
from agriseg.errors import ConfigError
from agriseg.outputs import atomic_dir
from agriseg.raster.grid import PatchGrid, default_overlap, make_grid
from agriseg.raster.io import MaskSource, check_band_indexes, open_raster
from agriseg.raster.labels import LabelReader, iter_label_strips
from agriseg.raster.reader import StripReader, cut_patch
from agriseg.vector.labels import open_labels

log = logging.getLogger("agriseg")

INDEX_NAME = "index.gpkg"
INDEX_LAYER = "patches"
LABELS_DIR = "labels"
INDEX_FIELDS = ("file", "label_file", "row", "col", "x_off", "y_off", "width", "height",
                "valid_fraction")


@dataclass
class TileResult:
    out_dir: Path
    index_path: Path
    written: int
    skipped: int  # patches that were entirely no-data
    total: int
    width: int
    height: int
    patch_px: int
    overlap_px: int
    labels: Path | None
    seconds: float


def cut_tiles(raster: str | os.PathLike, out_dir: str | os.PathLike, *, patch_px: int,
              overlap_px: int | None = None, labels: str | os.PathLike | None = None,
              label_field: str | None = None, classes: Sequence[str] | None = None,
              bands: Sequence[int] | None = None,
              overwrite: bool = False, progress: bool = False) -> TileResult:
    """Write the patches of ``raster`` (and of ``labels``) and their index to ``out_dir``.

    ``out_dir`` gets ``<stem>_r{row}_c{col}.tif`` per patch that has any valid pixel,
    ``labels/<same name>`` (uint8, 255 = unknown) when ``labels`` is given, and
    ``index.gpkg``; it appears only when complete. ``labels`` is a label raster on any grid
    (resampled by nearest) or a polygon file whose ``label_field`` (default ``class_id``) holds
    class ids, or class names when ``classes`` (names in id order) is given; pixels in no
    polygon are 0 (background). Label pixels where the image is no-data
    are 255. ``bands`` (1-based) selects image bands; default all.
    """
    t0 = time.perf_counter()
    if label_field is not None and labels is None:
        raise ConfigError("a label field was given without labels; pass the labels file too")
    out_dir = Path(out_dir)
    with open_raster(raster) as src:
        indexes = _band_indexes(src, bands)
        if overlap_px is None:
            overlap_px = default_overlap(patch_px)
        grid = make_grid(src.height, src.width, patch_px, overlap_px)
        if src.crs is None:
            log.warning("%s: raster has no CRS; patches and index are written without one",
                        raster)
        with atomic_dir(out_dir, overwrite) as tmp, contextlib.ExitStack() as stack:
            lab = None
            if labels is not None:
                lab = stack.enter_context(open_labels(labels, src, label_field=label_field,
                                                     classes=classes))
                (tmp / LABELS_DIR).mkdir()
            records = _write_patches(src, indexes, grid, tmp, Path(raster).stem, lab,
                                     progress)
            write_index(tmp / INDEX_NAME, records, src.crs)
    return TileResult(out_dir=out_dir, index_path=out_dir / INDEX_NAME, written=len(records),
                      skipped=len(grid) - len(records), total=len(grid), width=grid.width,
                      height=grid.height, patch_px=patch_px, overlap_px=overlap_px,
                      labels=Path(labels) if labels is not None else None,
                      seconds=time.perf_counter() - t0)


def _band_indexes(src: rasterio.DatasetReader, bands: Sequence[int] | None) -> list[int]:
    return check_band_indexes(src, bands) if bands else list(range(1, src.count + 1))


def _write_patches(src: rasterio.DatasetReader, indexes: list[int], grid: PatchGrid,
                   out: Path, stem: str, labels: LabelReader | None, progress: bool
                   ) -> list[dict[str, Any]]:
    """Stream the grid, write every patch with valid pixels; return the index records."""
    mask = MaskSource.of(src, indexes)
    writer = PatchWriter(src, indexes, mask)
    strips = iter_label_strips(labels, grid) if labels is not None else None
    records: list[dict[str, Any]] = []
    bar = tqdm(total=len(grid), unit="patch", desc="tile", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    with bar:
        for row in StripReader(src, indexes, grid, mask):
            label_strip = next(strips) if strips is not None else None
            for j, x0 in enumerate(grid.cols):
                bar.update(1)
                data, valid = cut_patch(row, x0, grid)
                if not valid.any():
                    continue
                window = Window(x0, row.y0, grid.read_w, grid.read_h)
                name = f"{stem}_r{row.index:04d}_c{j:04d}.tif"
                writer.write_image(out / name, window, data, valid)
                label_name = None
                if label_strip is not None:
                    label_name = f"{LABELS_DIR}/{name}"
                    patch_labels = label_strip[:, x0:x0 + grid.read_w].copy()
                    patch_labels[~valid] = NODATA
                    writer.write_labels(out / label_name, window, patch_labels, labels)
                records.append(dict(
                    file=name, label_file=label_name, row=row.index, col=j, x_off=x0,
                    y_off=row.y0, width=grid.read_w, height=grid.read_h,
                    valid_fraction=float(valid.mean()),
                    geometry=footprint(window, src.transform)))
    return records


class PatchWriter:
    """Writes patch GeoTIFFs that carry the source's bands, dtype, nodata and metadata."""

    def __init__(self, src: rasterio.DatasetReader, indexes: list[int],
                 mask: MaskSource) -> None:
        self.src, self.indexes = src, indexes
        is_float = np.dtype(src.dtypes[0]).kind == "f"
        self.profile: dict[str, Any] = dict(
            driver="GTiff", count=len(indexes), dtype=src.dtypes[0], nodata=src.nodata,
            compress="deflate", predictor=3 if is_float else 2)
        self.descriptions = [src.descriptions[i - 1] for i in indexes]
        self.colorinterp = [src.colorinterp[i - 1] for i in indexes]
        # no-data carried by a mask (not an alpha band we copy) goes into an internal mask
        self.write_mask = mask.read_mask_band and ColorInterp.alpha not in self.colorinterp
        self.tags = src.tags()

    def _open(self, path: Path, window: Window, **profile: Any) -> Any:
        kw = dict(width=int(window.width), height=int(window.height),
                  transform=window_transform(window, self.src.transform), **profile)
        if self.src.crs is not None:
            kw["crs"] = self.src.crs
        return rasterio.open(path, "w", **kw)

    def write_image(self, path: Path, window: Window, data: np.ndarray,
                    valid: np.ndarray) -> None:
        with self._open(path, window, **self.profile) as dst:
            dst.colorinterp = self.colorinterp
            for i, desc in enumerate(self.descriptions, 1):
                if desc:
                    dst.set_band_description(i, desc)
            if self.tags:
                dst.update_tags(**self.tags)
            dst.write(data)
            if self.write_mask:
                dst.write_mask(valid.astype(np.uint8) * 255)

    def write_labels(self, path: Path, window: Window, classes: np.ndarray,
                     labels: LabelReader) -> None:
        with self._open(path, window, driver="GTiff", count=1, dtype="uint8",
                        nodata=NODATA, compress="deflate") as dst:
            if labels.colormap:
                dst.write_colormap(1, labels.colormap)
            dst.set_band_description(1, "class")
            tags = {**labels.tags, **{k: v for k, v in self.tags.items()
                                      if k == "AREA_OR_POINT"}}
            if tags:
                dst.update_tags(**tags)
            dst.write(classes, 1)


def footprint(window: Window, transform: rasterio.Affine) -> Polygon:
    """The window's outline in map coordinates (exact for rotated transforms too)."""
    x0, y0 = window.col_off, window.row_off
    x1, y1 = x0 + window.width, y0 + window.height
    ring = [transform * (x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    return orient(Polygon(ring))  # counter-clockwise exterior, whatever the transform's signs


def write_index(path: Path, records: list[dict[str, Any]], crs: Any) -> None:
    """Write the patch footprints as layer ``patches`` of a GeoPackage (typed even if empty)."""
    columns: dict[str, Any] = {
        "file": np.array([r["file"] for r in records], dtype=object),
        "label_file": np.array([r["label_file"] for r in records], dtype=object)}
    for name in INDEX_FIELDS[2:-1]:
        columns[name] = np.array([r[name] for r in records], dtype=np.int32)
    columns["valid_fraction"] = np.array([r["valid_fraction"] for r in records],
                                         dtype=np.float64)
    gdf = gpd.GeoDataFrame(columns, geometry=[r["geometry"] for r in records],
                           crs=crs.to_wkt() if crs is not None else None)
    with warnings.catch_warnings():  # no CRS was already reported once, clearly
        warnings.filterwarnings("ignore", message="'crs' was not provided")
        pyogrio.write_dataframe(gdf, path, layer=INDEX_LAYER, driver="GPKG",
                                geometry_type="Polygon")
