"""Polygon labels on an image's pixel grid, and the one entry point for any kind of labels.

Annotators draw plants as polygons (QGIS, CVAT, Label Studio...). :class:`VectorLabels` reads the
polygons that touch an image once, reprojects them to the image CRS and burns them window by
window, so training windows, ``tile`` and ``evaluate`` see labels exactly where the image pixels
are. The class comes from an attribute (``label_field``, default ``class_id``) holding either
integer class ids or class names matched to the model's classes (case-insensitive).
:func:`open_labels` opens either kind, polygons or a label raster
(:class:`~agriseg.raster.labels.RasterLabels`), aligned to an image.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
from affine import Affine
from rasterio.features import rasterize
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from shapely import STRtree, box
from shapely.geometry.base import BaseGeometry

from agriseg.constants import MAX_CLASS_ID
from agriseg.errors import InputNotFoundError, VectorError, first_line
from agriseg.raster.labels import LabelReader, RasterLabels

log = logging.getLogger("agriseg")

DEFAULT_LABEL_FIELD = "class_id"
VECTOR_SUFFIXES = frozenset({".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml",
                             ".sqlite", ".parquet", ".geoparquet"})


def is_vector_path(path: str | os.PathLike) -> bool:
    """True when ``path`` names a vector file (by its suffix), False for a raster."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


@contextlib.contextmanager
def open_labels(path: str | os.PathLike, like: rasterio.DatasetReader, *,
                label_field: str | None = None, classes: Sequence[str] | None = None,
                layer: str | int | None = None, unlabelled: int = 0,
                aoi: str | os.PathLike | None = None) -> Iterator[LabelReader]:
    """Open a label raster or vector file aligned to ``like``'s grid (CRS, transform, size).

    ``label_field``, ``classes`` (to read class names), ``unlabelled`` and ``aoi`` only
    concern polygons (see :class:`VectorLabels`); a label raster says itself which pixels are
    unknown (its no-data, 255, or outside its extent).
    """
    if is_vector_path(path):
        yield VectorLabels.from_file(path, like, label_field=label_field, classes=classes,
                                     layer=layer, unlabelled=unlabelled, aoi=aoi)
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
                  label_field: str | None = None, classes: Sequence[str] | None = None,
                  layer: str | int | None = None, unlabelled: int = 0,
                  aoi: str | os.PathLike | None = None) -> VectorLabels:
        """Read the polygons of ``path`` that touch ``like`` and reproject them to its CRS."""
        geoms, ids = read_label_polygons(path, crs=like.crs, bounds=tuple(like.bounds),
                                         label_field=label_field or DEFAULT_LABEL_FIELD,
                                         classes=classes, layer=layer)
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
        listed = pyogrio.list_layers(path)
        # tables without geometry (a styled GeoPackage's layer_styles) hold no labels
        layers = [str(name) for name, geom in listed if geom] or [str(listed[0][0])]
        if layer is None:
            layer = layers[0]
            if len(layers) > 1:
                log.warning("%s: has layers %s; using %r", path, ", ".join(layers), layer)
        return layer, pyogrio.read_info(path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, IndexError) as e:
        msg = first_line(e, "no layers").split(";")[0]
        raise VectorError(f"{path}: not a readable vector file ({msg})") from None


def _read_polygons(path: str | os.PathLike, layer: Any, info: dict, *, crs: Any,
                   bounds: tuple[float, ...], columns: list[str], what: str,
                   warn_crs: bool) -> gpd.GeoDataFrame:
    """The features touching ``bounds`` (in ``crs``) with a geometry, reprojected to ``crs``;
    anything but (multi)polygons is an error naming ``what`` they should be."""
    left, bottom, right, top = bounds
    vcrs, bbox = info["crs"], (min(left, right), min(bottom, top), max(left, right),
                               max(bottom, top))  # a y-down (pixel) transform flips them
    if crs is None or vcrs is None:
        if warn_crs:
            log.warning("%s: %s has no CRS; taking coordinates as they are, without "
                        "reprojection", path, "the image" if crs is None else "the vector file")
    else:
        bbox = transform_bounds(crs, vcrs, *bbox, densify_pts=21)
    df = pyogrio.read_dataframe(path, layer=layer, columns=columns, bbox=bbox)
    df = df[df.geometry.notna() & ~df.geometry.is_empty]
    if crs is not None and vcrs is not None:
        df = df.to_crs(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    kinds = set(df.geometry.geom_type) - {"Polygon", "MultiPolygon"}
    if kinds:
        raise VectorError(f"{path}: {what} must be polygons; found {', '.join(sorted(kinds))}")
    return df


def read_label_polygons(path: str | os.PathLike, *, crs: Any, bounds: tuple[float, ...],
                        label_field: str = DEFAULT_LABEL_FIELD,
                        classes: Sequence[str] | None = None, layer: str | int | None = None
                        ) -> tuple[list[BaseGeometry], np.ndarray]:
    """Polygons intersecting ``bounds`` (in ``crs``), reprojected to ``crs``, and their ids.

    ``label_field`` holds integer class ids, or class names when ``classes`` (the class list,
    in id order) is given: names match case-insensitively and an unknown name is an error
    naming the valid ones. Features with a null class or empty geometry are dropped; an id
    outside 0..254 or a non-polygon geometry is an error. Without a CRS on either side the
    coordinates are taken as they are (with a warning).
    """
    layer, info = _open_layer(path, layer)
    fields = [str(f) for f in info["fields"]]
    if label_field not in fields:
        raise VectorError(f"{path}: no field {label_field!r}; available fields: "
                          f"{', '.join(fields) or '(none)'}; choose one with --label-field")
    dtype = np.dtype(info["dtypes"][fields.index(label_field)])
    if dtype.kind not in "iufOSU":
        raise VectorError(f"{path}: field {label_field!r} holds {dtype} values; use class ids "
                          f"0..{MAX_CLASS_ID} or class names")
    df = _read_polygons(path, layer, info, crs=crs, bounds=bounds, columns=[label_field],
                        what="labels", warn_crs=True)
    values = df[label_field][df[label_field].notna()]
    geoms = list(df.geometry[df[label_field].notna()])
    if dtype.kind in "iuf":
        return geoms, _class_ids(values.to_numpy(dtype=np.float64), path, label_field)
    return geoms, _class_ids_from_names(values, classes, path, label_field)


def _class_ids(ids: np.ndarray, path: Any, field: str) -> np.ndarray:
    bad = (ids < 0) | (ids > MAX_CLASS_ID) | (ids != np.round(ids))
    if bad.any():
        raise VectorError(f"{path}: {field} = {ids[bad][0]:g} is not a class id; use "
                          f"integers 0..{MAX_CLASS_ID}")
    return ids.astype(np.uint8)


def _class_ids_from_names(values: Any, classes: Sequence[str] | None, path: Any,
                          field: str) -> np.ndarray:
    """Class names (case-insensitive) to ids in ``classes``' order."""
    names = [str(v).strip() for v in values]
    if classes is None:
        raise VectorError(f"{path}: field {field!r} holds names ({names[0] if names else '?'!r}"
                          f"...) but no class list was given to map them to ids; pass the "
                          f"classes or use a field of integer class ids")
    lookup = {c.strip().lower(): i for i, c in enumerate(classes)}
    unknown = sorted({n for n in names if n.lower() not in lookup})
    if unknown:
        raise VectorError(f"{path}: {field} = {unknown[0]!r} is not a class; valid names: "
                          f"{', '.join(classes)} (case does not matter)")
    return np.array([lookup[n.lower()] for n in names], dtype=np.uint8)


def read_aoi_polygons(path: str | os.PathLike, *, crs: Any, bounds: tuple[float, ...],
                      layer: str | int | None = None) -> list[BaseGeometry]:
    """The (multi)polygons of an area-of-interest file that touch ``bounds``, in ``crs``."""
    layer, info = _open_layer(path, layer)
    df = _read_polygons(path, layer, info, crs=crs, bounds=bounds, columns=[],
                        what="an area of interest", warn_crs=False)
    return list(df.geometry)
