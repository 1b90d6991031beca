"""Class labels on an image's pixel grid, from a label raster.

Training windows, ``tile`` and ``evaluate`` all ask the same question: for a window of the
*image*, what is the class id of every pixel? A :class:`LabelReader` answers it. A label raster
may sit on another grid or CRS; :class:`RasterLabels` resamples it by nearest neighbour through a
``WarpedVRT`` (class ids are categories: never interpolate them). The value ``NODATA`` (255)
means "unknown" (outside the label raster, its no-data) and is ignored by losses and metrics.
Polygon labels are the vector layer's (:mod:`agriseg.vector.labels`, which also opens either
kind with ``open_labels``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from agriseg.constants import MAX_CLASS_ID, NODATA
from agriseg.errors import InputNotFoundError, RasterError, first_line
from agriseg.raster.grid import PatchGrid
from agriseg.raster.io import MaskSource
from agriseg.raster.reader import rolling_strips

log = logging.getLogger("agriseg")

class LabelReader(Protocol):
    """Anything that gives class ids (uint8, 255 = unknown) for a window of the image grid."""

    colormap: dict[int, tuple[int, ...]] | None
    tags: dict[str, str]

    def read(self, window: Window) -> np.ndarray: ...

    def close(self) -> None: ...


def _same_grid(a: rasterio.DatasetReader, b: rasterio.DatasetReader) -> bool:
    return (a.width, a.height) == (b.width, b.height) and a.crs == b.crs \
        and a.transform.almost_equals(b.transform)


class RasterLabels:
    """A single-band label raster read on the image grid (nearest resampling if it differs)."""

    def __init__(self, path: str | os.PathLike, like: rasterio.DatasetReader) -> None:
        self.path = path
        if not Path(path).exists() and "://" not in str(path):
            raise InputNotFoundError(f"{path}: label file not found")
        try:
            self.src = rasterio.open(path)
        except RasterioIOError as e:
            msg = first_line(e, "unreadable")
            raise RasterError(f"{path}: not a readable label raster ({msg}); polygon labels "
                              f"are told by their suffix (.gpkg, .shp, .geojson, .fgb...)") \
                from None
        self.ds: Any = self.src
        try:
            self._align(like)
        except BaseException:
            self.src.close()
            raise
        self.mask = MaskSource.of(self.ds, [1])
        try:
            self.colormap = dict(self.src.colormap(1))
        except ValueError:  # no colour table
            self.colormap = None
        self.tags = {k: v for k, v in self.src.tags().items() if k != "AREA_OR_POINT"}

    def _align(self, like: rasterio.DatasetReader) -> None:
        if self.src.count != 1:
            raise RasterError(f"{self.path}: label raster has {self.src.count} bands; expected "
                              f"one band of class ids 0..{MAX_CLASS_ID}")
        if _same_grid(self.src, like):
            return
        if self.src.crs is None or like.crs is None:
            which = self.path if self.src.crs is None else like.name
            raise RasterError(f"{self.path}: label raster is on another grid than {like.name} "
                              f"and {which} has no CRS, so they cannot be aligned; give both "
                              f"a CRS or use labels on the image's exact grid")
        self.ds = WarpedVRT(self.src, crs=like.crs, transform=like.transform, width=like.width,
                            height=like.height, resampling=Resampling.nearest,
                            nodata=NODATA)

    def read(self, window: Window) -> np.ndarray:
        """Class ids under ``window`` (image pixels) as uint8; 255 where unknown."""
        try:
            data = self.ds.read(1, window=window)
            valid = self.mask.valid(self.ds, data[None], [1], window)
        except RasterioIOError as e:
            msg = first_line(e, "read failed")
            raise RasterError(f"{self.path}: corrupt or unreadable labels: {msg}") from None
        return _to_class_ids(data, valid, self.path)

    def close(self) -> None:
        if self.ds is not self.src:
            self.ds.close()
        self.src.close()


def _to_class_ids(data: np.ndarray, valid: np.ndarray, name: Any) -> np.ndarray:
    valid &= data != NODATA  # 255 means "unknown" even without a declared nodata
    values = data[valid]
    if values.size:
        bad = (values < 0) | (values > MAX_CLASS_ID)
        if values.dtype.kind == "f":
            bad |= values != np.round(values)
        if bad.any():
            raise RasterError(f"{name}: label value {values[bad][0]} is not a class id; "
                              f"labels must be integers 0..{MAX_CLASS_ID} "
                              f"({NODATA} or the raster's nodata = unknown)")
    out = np.full(data.shape, NODATA, dtype=np.uint8)
    out[valid] = values.astype(np.uint8)
    return out


def iter_label_strips(labels: LabelReader, grid: PatchGrid) -> Iterator[np.ndarray]:
    """Labels under each patch row of ``grid`` (``(read_h, width)`` uint8), reading each image
    row once, like :class:`~agriseg.raster.reader.StripReader` does for the image. Each strip
    is a view of one reused buffer: copy what must outlive the next step."""
    def read(y: int, n: int) -> tuple[np.ndarray]:
        return (labels.read(Window(0, y, grid.width, n)),)

    for _, _, (strip,) in rolling_strips(grid, read):
        yield strip
