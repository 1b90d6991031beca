"""Checks on training inputs, run before training so a bad file fails in seconds, not hours.

Every image must open and carry the bands the model takes; its labels must lie over it (after
reprojection), carry the class field, and hold only class ids the model can predict. Each
problem is one :class:`~agriseg.errors.AgrisegError` naming the file, which the CLI turns into
one line and exit code 2.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pyogrio
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import transform_bounds

from agriseg.constants import NODATA
from agriseg.errors import ConfigError, ModelMismatchError, RasterError, VectorError
from agriseg.raster.io import alpha_band, open_raster, select_bands
from agriseg.raster.labels import RasterLabels
from agriseg.samples import Sample
from agriseg.vector.labels import (
    DEFAULT_LABEL_FIELD,
    is_vector_path,
    read_aoi_polygons,
    read_label_polygons,
)

log = logging.getLogger("agriseg")

MAX_CHECK_PX = 16_000_000  # label rasters up to this size are read whole (in strips)


def image_bands(src: rasterio.DatasetReader, bands: Sequence[str] | None) -> list[int]:
    """1-based indexes of the training bands: matched by name, or every non-alpha band."""
    if bands:
        return select_bands(src, list(bands))
    alpha = alpha_band(src)
    return [i for i in range(1, src.count + 1) if i != alpha]


def validate_samples(samples: Sequence[Sample], *, bands: Sequence[str] | None,
                     num_classes: int, label_field: str | None = None,
                     classes: Sequence[str] | None = None) -> None:
    """Raise the first problem found in ``samples`` (see the module docstring); else None.

    ``label_field`` overrides each sample's own field; ``classes`` (names in id order) lets
    polygon labels name their classes instead of numbering them. Without ``bands`` all images
    must have the same number of data bands, since the model takes a fixed number of channels.
    """
    if not samples:
        raise ConfigError("no training images given")
    if not 1 <= num_classes <= NODATA:
        raise ConfigError(f"number of classes {num_classes} must be in 1..{NODATA}")
    counts: dict[int, str] = {}
    for s in samples:
        with open_raster(s.image) as src:
            counts.setdefault(len(image_bands(src, bands)), str(s.image))
            field = label_field or s.label_field
            if is_vector_path(s.labels):
                _check_vector(s, src, field, num_classes, classes)
            else:
                _check_raster(s, src, num_classes)
    if len(counts) > 1:
        (n1, f1), (n2, f2) = list(counts.items())[:2]
        raise ModelMismatchError(f"{f2}: has {n2} data bands but {f1} has {n1}; all training "
                                 f"images need the same bands (choose them by name)")


def _check_vector(s: Sample, src: rasterio.DatasetReader, field: str | None,
                  num_classes: int, classes: Sequence[str] | None) -> None:
    bounds = tuple(src.bounds)
    geoms, ids = read_label_polygons(s.labels, crs=src.crs, bounds=bounds,
                                     label_field=field or DEFAULT_LABEL_FIELD, classes=classes)
    aoi = read_aoi_polygons(s.aoi, crs=src.crs, bounds=bounds) if s.aoi else []
    if not geoms and not aoi:
        crs_note = ""
        if (src.crs is None) != (_vector_crs(s) is None):
            crs_note = (f"; {'the image' if src.crs is None else 'the label file'} has no CRS, "
                        f"so coordinates could not be reprojected")
        raise VectorError(f"{s.labels}: no label polygons overlap the image {s.image}"
                          f"{crs_note}")
    if ids.size and int(ids.max()) >= num_classes:
        raise VectorError(f"{s.labels}: class id {int(ids.max())} in field "
                          f"{field or DEFAULT_LABEL_FIELD!r} but the model has {num_classes} "
                          f"classes (0..{num_classes - 1}); fix the labels or the class list")


def _vector_crs(s: Sample) -> object:
    return pyogrio.read_info(s.labels)["crs"]


def _check_raster(s: Sample, src: rasterio.DatasetReader, num_classes: int) -> None:
    reader = RasterLabels(s.labels, src)  # raises on several bands / CRS missing on one side
    try:
        lab = reader.src
        if reader.ds is not lab:
            lb = lab.bounds
            if lab.crs is not None and src.crs is not None and lab.crs != src.crs:
                lb = transform_bounds(lab.crs, src.crs, *lb, densify_pts=21)
            if not _intersects(lb, tuple(src.bounds)):
                raise RasterError(f"{s.labels}: label raster does not overlap the image "
                                  f"{s.image} (bounds {_fmt(lb)} vs {_fmt(src.bounds)})")
        top = _max_class(lab)
    finally:
        reader.close()
    if top is None:
        raise RasterError(f"{s.labels}: label raster holds no class ids (all no-data/255)")
    if top >= num_classes:
        raise RasterError(f"{s.labels}: class id {top} but the model has {num_classes} classes "
                          f"(0..{num_classes - 1}); fix the labels or the class list")


def _max_class(lab: rasterio.DatasetReader) -> int | None:
    """Largest class id in the label raster, reading it in strips when it is small enough and
    through overviews / a nearest-neighbour decimated read when it is not (a rare class can then
    be missed: the training windows check again)."""
    nodata = lab.nodata
    if lab.width * lab.height <= MAX_CHECK_PX:
        rows = max(1, 4_000_000 // lab.width)
        parts = (lab.read(1, window=((y, min(y + rows, lab.height)), (0, lab.width)))
                 for y in range(0, lab.height, rows))
    else:
        f = (lab.width * lab.height / MAX_CHECK_PX) ** 0.5
        shape = (max(1, int(lab.height / f)), max(1, int(lab.width / f)))
        parts = iter([lab.read(1, out_shape=shape, resampling=Resampling.nearest)])
    top: int | None = None
    for data in parts:
        keep = data != NODATA
        if nodata is not None and not np.isnan(nodata):
            keep &= data != nodata
        if data.dtype.kind == "f":
            keep &= np.isfinite(data)
        values = data[keep]
        if values.size:
            bad = (values < 0) | (values != np.round(values))
            if bad.any():
                raise RasterError(f"{lab.name}: label value {values[bad][0]} is not a class id; "
                                  f"labels must be integers 0..{NODATA - 1}")
            top = max(int(values.max()), -1 if top is None else top)
    return top


def _intersects(a: Sequence[float], b: Sequence[float]) -> bool:
    ax0, ax1 = sorted((a[0], a[2]))
    ay0, ay1 = sorted((a[1], a[3]))
    bx0, bx1 = sorted((b[0], b[2]))
    by0, by1 = sorted((b[1], b[3]))
    return ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1


def _fmt(b: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in b) + ")"
