"""Class labels on an image's pixel grid, from a label raster or from polygons.

Training windows and ``tile`` both ask the same question: for a window of the *image*, what is
the class id of every pixel? A label raster may sit on another grid or CRS; it is resampled by
nearest neighbour through a ``WarpedVRT`` (class ids are categories: never interpolate them).
Polygons are read once, reprojected to the image CRS and burnt window by window. The value
``LABEL_NODATA`` (255) means "unknown" (outside the label raster, its no-data) and is ignored by
losses. Polygon labels leave uncovered pixels at 0 (background) by default: a polygon layer can
only say where something *is*, and annotators draw the plants, not the soil. Training passes
``unlabelled=255`` instead, since an unannotated corner is not known to be soil; an optional
area-of-interest (AOI) layer then says where the annotation is complete (uncovered = 0 inside).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyogrio
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.features import rasterize
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from shapely import STRtree, box
from shapely.geometry.base import BaseGeometry

from agriseg.errors import InputNotFoundError, RasterError, VectorError
from agriseg.raster.grid import PatchGrid
from agriseg.raster.io import MaskSource

log = logging.getLogger("agriseg")

LABEL_NODATA = 255
MAX_CLASS_ID = 254
DEFAULT_LABEL_FIELD = "class_id"
VECTOR_SUFFIXES = frozenset({".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml",
                             ".sqlite", ".parquet", ".geoparquet"})


class LabelReader(Protocol):
    """Anything that gives class ids (uint8, 255 = unknown) for a window of the image grid."""

    colormap: dict[int, tuple[int, ...]] | None
    tags: dict[str, str]

    def read(self, window: Window) -> np.ndarray: ...

    def close(self) -> None: ...


def is_vector_path(path: str | os.PathLike) -> bool:
    """True when ``path`` names a vector file (by its suffix), False for a raster."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


@contextlib.contextmanager
def open_labels(path: str | os.PathLike, like: rasterio.DatasetReader, *,
                label_field: str | None = None, layer: str | int | None = None,
                unlabelled: int = 0, aoi: str | os.PathLike | None = None
                ) -> Iterator[LabelReader]:
    """Open a label raster or vector file aligned to ``like``'s grid (CRS, transform, size).

    ``unlabelled`` and ``aoi`` only concern polygons (see :class:`VectorLabels`); a label raster
    says itself which pixels are unknown (its no-data, 255, or outside its extent).
    """
    if is_vector_path(path):
        yield VectorLabels.from_file(path, like, label_field=label_field, layer=layer,
                                     unlabelled=unlabelled, aoi=aoi)
        return
    if label_field is not None:
        log.warning("%s: --label-field is ignored for a label raster", path)
    if aoi is not None:
        log.warning("%s: the area of interest is ignored for a label raster", path)
    reader = RasterLabels(path, like)
    try:
        yield reader
    finally:
        reader.close()


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
            msg = str(e).splitlines()[0] if str(e) else "unreadable"
            raise RasterError(f"{path}: not a readable label raster ({msg}); vector labels "
                              f"need one of {', '.join(sorted(VECTOR_SUFFIXES))}") from None
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
                            nodata=LABEL_NODATA)

    def read(self, window: Window) -> np.ndarray:
        """Class ids under ``window`` (image pixels) as uint8; 255 where unknown."""
        try:
            data = self.ds.read(1, window=window)
            valid = self.mask.valid(self.ds, data[None], [1], window)
        except RasterioIOError as e:
            msg = str(e).splitlines()[0] if str(e) else "read failed"
            raise RasterError(f"{self.path}: corrupt or unreadable labels: {msg}") from None
        return _to_class_ids(data, valid, self.path)

    def close(self) -> None:
        if self.ds is not self.src:
            self.ds.close()
        self.src.close()


def _to_class_ids(data: np.ndarray, valid: np.ndarray, name: Any) -> np.ndarray:
    valid &= data != LABEL_NODATA  # 255 means "unknown" even without a declared nodata
    values = data[valid]
    if values.size:
        bad = (values < 0) | (values > MAX_CLASS_ID)
        if values.dtype.kind == "f":
            bad |= values != np.round(values)
        if bad.any():
            raise RasterError(f"{name}: label value {values[bad][0]} is not a class id; "
                              f"labels must be integers 0..{MAX_CLASS_ID} "
                              f"({LABEL_NODATA} or the raster's nodata = unknown)")
    out = np.full(data.shape, LABEL_NODATA, dtype=np.uint8)
    out[valid] = values.astype(np.uint8)
    return out


class VectorLabels:
    """Polygons with class ids, in the image CRS, burnt into any window of the image grid.

    Pixels whose centre lies in no polygon are ``unlabelled`` (default 0, background; training
    uses 255, unknown), except inside the ``aoi`` polygons, where they are 0: the AOI marks
    where annotation is complete. Where polygons overlap the later feature wins (file order),
    as with ``gdal_rasterize``.
    """

    colormap = None

    def __init__(self, geometries: list[BaseGeometry], class_ids: np.ndarray,
                 transform: Affine, *, unlabelled: int = 0,
                 aoi: list[BaseGeometry] | None = None) -> None:
        self.geometries = geometries
        self.class_ids = np.asarray(class_ids, dtype=np.uint8)
        self.transform = transform
        self.tree = STRtree(geometries)
        self.tags: dict[str, str] = {}
        self.unlabelled = int(unlabelled)
        self.aoi = [g for g in aoi or [] if g is not None and not g.is_empty]

    @classmethod
    def from_file(cls, path: str | os.PathLike, like: rasterio.DatasetReader, *,
                  label_field: str | None = None, layer: str | int | None = None,
                  unlabelled: int = 0, aoi: str | os.PathLike | None = None) -> VectorLabels:
        """Read the polygons of ``path`` that touch ``like`` and reproject them to its CRS."""
        geoms, ids = read_label_polygons(path, crs=like.crs, bounds=tuple(like.bounds),
                                         label_field=label_field or DEFAULT_LABEL_FIELD,
                                         layer=layer)
        aoi_geoms = None if aoi is None else read_aoi_polygons(aoi, crs=like.crs,
                                                               bounds=tuple(like.bounds))
        return cls(geoms, ids, like.transform, unlabelled=unlabelled, aoi=aoi_geoms)

    def read(self, window: Window) -> np.ndarray:
        """Class ids under ``window`` (image pixels) as uint8; ``unlabelled`` (0 inside the
        AOI) where no polygon lies."""
        shape = (int(window.height), int(window.width))
        left, bottom, right, top = window_bounds(window, self.transform)
        hits = np.sort(self.tree.query(box(min(left, right), min(bottom, top),
                                           max(left, right), max(bottom, top))))
        out = np.full(shape, self.unlabelled, dtype=np.uint8)
        tf = window_transform(window, self.transform)
        if self.aoi and self.unlabelled != 0:
            rasterize(((g, 0) for g in self.aoi), out=out, transform=tf)
        if hits.size:
            shapes = ((self.geometries[i], int(self.class_ids[i])) for i in hits)
            rasterize(shapes, out=out, transform=tf)
        return out

    def close(self) -> None:
        pass


def _open_layer(path: str | os.PathLike, layer: str | int | None) -> tuple[Any, dict]:
    if not Path(path).exists() and "://" not in str(path):
        raise InputNotFoundError(f"{path}: label file not found")
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
        if layer is None:
            layer = layers[0]
            if len(layers) > 1:
                log.warning("%s: has layers %s; using %r", path, ", ".join(layers), layer)
        return layer, pyogrio.read_info(path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, IndexError) as e:
        msg = str(e).splitlines()[0].split(";")[0] if str(e) else "no layers"
        raise VectorError(f"{path}: not a readable vector file ({msg})") from None


def read_label_polygons(path: str | os.PathLike, *, crs: Any, bounds: tuple[float, ...],
                        label_field: str = DEFAULT_LABEL_FIELD, layer: str | int | None = None
                        ) -> tuple[list[BaseGeometry], np.ndarray]:
    """Polygons intersecting ``bounds`` (in ``crs``), reprojected to ``crs``, and their ids.

    Features with a null class id or empty geometry are dropped; a non-integer field, an id
    outside 0..254 or a non-polygon geometry is an error. Without a CRS on either side the
    coordinates are taken as they are (with a warning).
    """
    layer, info = _open_layer(path, layer)
    fields = [str(f) for f in info["fields"]]
    if label_field not in fields:
        raise VectorError(f"{path}: no field {label_field!r}; available fields: "
                          f"{', '.join(fields) or '(none)'}; choose one with --label-field")
    dtype = np.dtype(info["dtypes"][fields.index(label_field)])
    if dtype.kind not in "iuf":
        raise VectorError(f"{path}: field {label_field!r} holds {dtype} values; class ids "
                          f"must be integers 0..{MAX_CLASS_ID}")
    left, bottom, right, top = bounds
    vcrs, bbox = info["crs"], (min(left, right), min(bottom, top), max(left, right),
                               max(bottom, top))  # a y-down (pixel) transform flips them
    if crs is None or vcrs is None:
        log.warning("%s: %s has no CRS; taking coordinates as they are, without reprojection",
                    path, "the image" if crs is None else "the vector file")
    else:
        bbox = transform_bounds(crs, vcrs, *bbox, densify_pts=21)
    df = pyogrio.read_dataframe(path, layer=layer, columns=[label_field], bbox=bbox)
    df = df[df.geometry.notna() & ~df.geometry.is_empty & df[label_field].notna()]
    if crs is not None and vcrs is not None:
        df = df.to_crs(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    kinds = set(df.geometry.geom_type) - {"Polygon", "MultiPolygon"}
    if kinds:
        raise VectorError(f"{path}: labels must be polygons; found {', '.join(sorted(kinds))}")
    ids = df[label_field].to_numpy(dtype=np.float64)
    bad = (ids < 0) | (ids > MAX_CLASS_ID) | (ids != np.round(ids))
    if bad.any():
        raise VectorError(f"{path}: {label_field} = {ids[bad][0]:g} is not a class id; use "
                          f"integers 0..{MAX_CLASS_ID}")
    return list(df.geometry), ids.astype(np.uint8)


def read_aoi_polygons(path: str | os.PathLike, *, crs: Any, bounds: tuple[float, ...],
                      layer: str | int | None = None) -> list[BaseGeometry]:
    """The (multi)polygons of an area-of-interest file that touch ``bounds``, in ``crs``."""
    layer, info = _open_layer(path, layer)
    left, bottom, right, top = bounds
    vcrs, bbox = info["crs"], (min(left, right), min(bottom, top), max(left, right),
                               max(bottom, top))
    if crs is not None and vcrs is not None:
        bbox = transform_bounds(crs, vcrs, *bbox, densify_pts=21)
    df = pyogrio.read_dataframe(path, layer=layer, columns=[], bbox=bbox)
    df = df[df.geometry.notna() & ~df.geometry.is_empty]
    if crs is not None and vcrs is not None:
        df = df.to_crs(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    kinds = set(df.geometry.geom_type) - {"Polygon", "MultiPolygon"}
    if kinds:
        raise VectorError(f"{path}: an area of interest must be polygons; found "
                          f"{', '.join(sorted(kinds))}")
    return list(df.geometry)


def iter_label_strips(labels: LabelReader, grid: PatchGrid) -> Iterator[np.ndarray]:
    """Labels under each patch row of ``grid`` (``(read_h, width)`` uint8), reading each image
    row once, like :class:`~agriseg.raster.reader.StripReader` does for the image."""
    buf = np.empty((0, grid.width), dtype=np.uint8)
    start = 0
    for y0 in grid.rows:
        end = y0 + grid.read_h
        keep = max(0, start + buf.shape[0] - y0)
        buf = buf[buf.shape[0] - keep:]
        first_new = y0 + keep
        if first_new < end:
            new = labels.read(Window(0, first_new, grid.width, end - first_new))
            buf = np.concatenate([buf, new], axis=0)
        start = y0
        yield buf
