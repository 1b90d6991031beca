"""What a prescription is made from: the weed map (a class mask or class polygons) and the
field boundary, checked before any work starts.

A weed map is whatever ``agriseg`` itself produces: a class-mask GeoTIFF (uint8 class ids,
nodata 255, class names in its tags), the folder ``agriseg map`` writes (its ``mask.tif`` is
used), or a polygon file with ``class_name``/``class_id`` columns (``agriseg vectorize`` or the
folder's ``fields.gpkg``). Every way these can be unusable is one clear error here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from pyproj import CRS

from agriseg.errors import InputNotFoundError, RasterError, VectorError, first_line
from agriseg.raster.io import open_raster
from agriseg.vector.attributes import class_names_from_tags

# What ``agriseg map`` names its class mask (agriseg.jobs.fieldmap.MASK_NAME; jobs/ sits above
# this package, so the name is repeated here and a test checks that the two agree).
MAP_MASK_NAME = "mask.tif"
POLYGON_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".parquet", ".zip")


@dataclass(frozen=True)
class WeedMap:
    """A checked weed map: its CRS, which class ids are weed, and its footprint (the raster's
    bounds, or the polygons' envelope) as a polygon in its CRS."""

    path: Path
    kind: str  # "mask" or "polygons"
    crs: CRS
    weed_ids: tuple[int, ...]
    weed_names: tuple[str, ...]
    footprint: shapely.Geometry
    weed_geoms: np.ndarray | None = None  # polygons input: the weed polygons


def open_weed_map(path: str | os.PathLike, weed_class: str | Sequence[str] | None = None
                  ) -> WeedMap:
    """Check ``path`` (mask, map folder or polygon file) and find its weed class(es)."""
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"{path}: weed map not found (expected a class mask, an "
                                 f"'agriseg map' folder or a polygon file)")
    if p.is_dir():
        if not (p / MAP_MASK_NAME).is_file():
            raise InputNotFoundError(f"{path}: folder has no {MAP_MASK_NAME}; pass an "
                                     f"'agriseg map' output folder or the mask itself")
        p = p / MAP_MASK_NAME
    if p.suffix.lower() in POLYGON_SUFFIXES:
        return _polygon_map(p, weed_class)
    return _mask_map(p, weed_class)


def _mask_map(p: Path, weed_class) -> WeedMap:
    with open_raster(p) as src:
        if src.crs is None:
            raise RasterError(f"{p}: mask has no CRS; a prescription needs georeferenced "
                              f"cells (assign one with gdal_edit.py -a_srs)")
        if src.count != 1:
            raise RasterError(f"{p}: has {src.count} bands, a class mask has one; pass the "
                              f"mask that 'agriseg predict' or 'map' writes, not the image")
        if src.dtypes[0] not in ("uint8", "uint16", "int16", "int32", "uint32"):
            raise RasterError(f"{p}: band 1 is {src.dtypes[0]}, not class ids; pass the "
                              f"class mask (uint8) that 'agriseg predict' or 'map' writes")
        names = class_names_from_tags(src.tags(), list(range(255)))
        footprint = shapely.box(*src.bounds)
        crs = CRS.from_user_input(src.crs)
    ids, weed = pick_weed_classes(names, weed_class, str(p))
    return WeedMap(p, "mask", crs, ids, weed, footprint)


def _polygon_map(p: Path, weed_class) -> WeedMap:
    where = f"/vsizip/{p}" if p.suffix.lower() == ".zip" else str(p)
    try:
        df = pyogrio.read_dataframe(where)
    except Exception as e:  # noqa: BLE001 - OGR raises many kinds for an unreadable file
        raise VectorError(f"{p}: not a readable polygon file ({first_line(e)})") from None
    if df.crs is None:
        raise VectorError(f"{p}: polygons have no CRS; a prescription needs georeferencing")
    if "class_id" not in df.columns and "class_name" not in df.columns:
        raise VectorError(f"{p}: no class_id or class_name column (columns: "
                          f"{', '.join(map(str, df.columns))}); pass the polygons that "
                          f"'agriseg vectorize' or 'map' writes")
    ids = df["class_id"].astype(int).to_numpy() if "class_id" in df.columns \
        else np.full(len(df), -1)
    names_col = df["class_name"].astype(str).to_numpy() if "class_name" in df.columns \
        else np.array([f"class_{i}" for i in ids])
    names = dict(zip(ids.tolist(), names_col.tolist(), strict=True))
    if "class_id" not in df.columns:  # names only: number them
        unique, ids = np.unique(names_col, return_inverse=True)
        names = dict(enumerate(unique.tolist()))
    weed_ids, weed_names = pick_weed_classes(names, weed_class, str(p))
    geoms = df.geometry.to_numpy()
    keep = np.isin(ids, weed_ids) & ~shapely.is_empty(geoms) & ~shapely.is_missing(geoms)
    footprint = shapely.box(*shapely.total_bounds(geoms)) if len(geoms) else shapely.Polygon()
    return WeedMap(p, "polygons", CRS.from_user_input(df.crs), weed_ids, weed_names,
                   footprint, shapely.make_valid(geoms[keep]))


def pick_weed_classes(names: dict[int, str], weed_class: str | Sequence[str] | None,
                      where: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Weed class ids and names: every class whose name contains "weed", or those asked for
    by name or id (``weed_class``, one value or several)."""
    named = {i: n for i, n in names.items() if n != f"class_{i}"}
    known = ", ".join(f"{i}={n}" for i, n in sorted(named.items())) or "none"
    if weed_class is None:
        ids = [i for i, n in sorted(named.items()) if "weed" in n.lower()]
        if not ids:
            raise VectorError(f"{where}: no weed class (classes: {known}); name it with "
                              f"--weed-class NAME or ID")
        return tuple(ids), tuple(named[i] for i in ids)
    wanted = [weed_class] if isinstance(weed_class, str) else list(weed_class)
    ids = []
    for w in (str(v).strip() for v in wanted):
        match = [i for i, n in named.items() if n.lower() == w.lower()]
        if not match and w.isdigit() and int(w) in names:
            match = [int(w)]
        if not match:
            raise VectorError(f"{where}: weed class {w!r} is not a class of this map "
                              f"(classes: {known})")
        ids += match
    ids = sorted(set(ids))
    return tuple(ids), tuple(names[i] for i in ids)


def read_boundary(path: str | os.PathLike, crs: CRS, footprint: shapely.Geometry
                  ) -> shapely.Geometry:
    """The field boundary: the union of the polygons in ``path``, which must be in the weed
    map's ``crs`` (no silent reprojection: a boundary in the wrong CRS is a wrong boundary)
    and overlap its ``footprint``."""
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"{path}: boundary file not found")
    try:
        df = pyogrio.read_dataframe(p)
    except Exception as e:  # noqa: BLE001
        raise VectorError(f"{path}: not a readable polygon file ({first_line(e)})") from None
    geoms = df.geometry.to_numpy() if len(df) else np.array([])
    polys = [g for g in shapely.get_parts(shapely.make_valid(geoms))
             if g is not None and g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        raise VectorError(f"{path}: boundary has no polygons")
    if df.crs is None or not CRS.from_user_input(df.crs).equals(crs):
        theirs = CRS.from_user_input(df.crs).to_string() if df.crs is not None else "no CRS"
        raise VectorError(f"{path}: boundary is in {theirs} but the weed map is in "
                          f"{crs.to_string()}; reproject it, e.g. ogr2ogr -t_srs "
                          f"{crs.to_string()} boundary_fixed.gpkg {p.name}")
    boundary = shapely.union_all(polys)
    if not shapely.intersection(boundary, footprint).area > 0:
        raise VectorError(f"{path}: boundary does not overlap the weed map (boundary bounds "
                          f"{_bounds(boundary)}, map bounds {_bounds(footprint)})")
    return boundary


def _bounds(g: shapely.Geometry) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in g.bounds) + ")"
