"""Per-polygon attributes in real units: areas in m² and ha, perimeters in metres.

Areas must be metres even when the mask is in a geographic CRS (degrees): then geometries are
projected to a Lambert azimuthal equal-area CRS centred on the data, which keeps areas exact
and, over a field's extent, lengths within a small fraction of a percent.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import shapely
from pyproj import CRS, Transformer

from agriseg.raster.units import metres_per_unit
from agriseg.styles import ClassStyle, class_styles

log = logging.getLogger("agriseg")


def metric_area_perimeter(geoms: np.ndarray, crs: CRS | None) -> tuple[np.ndarray, np.ndarray]:
    """Areas (m²) and perimeters (m) of ``geoms`` given in ``crs``.

    Without a CRS the units are the raster's own (pixels or whatever the transform says), and
    a warning says so.
    """
    if len(geoms) == 0:
        return np.zeros(0), np.zeros(0)
    if crs is None:
        log.warning("mask has no CRS: areas and perimeters are in raster units, not metres")
        return shapely.area(geoms), shapely.length(geoms)
    crs = CRS.from_user_input(crs)
    if crs.is_geographic:
        geoms = _to_local_equal_area(geoms, crs)
        return shapely.area(geoms), shapely.length(geoms)
    factor = metres_per_unit(crs)[0]
    return shapely.area(geoms) * factor**2, shapely.length(geoms) * factor


def _to_local_equal_area(geoms: np.ndarray, crs: CRS) -> np.ndarray:
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    lon, lat = (xmin + xmax) / 2, (ymin + ymax) / 2
    laea = CRS.from_proj4(f"+proj=laea +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")
    tr = Transformer.from_crs(crs, laea, always_xy=True)
    return shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0],
                                                                            xy[:, 1])))


def class_names_from_tags(tags: dict[str, str], class_ids: list[int]) -> dict[int, str]:
    """Class names stored in a mask's tags, in any of the forms agriseg and its data use.

    ``classes`` as a JSON list (agriseg predict), ``classes`` as ``0=soil,1=crop`` (label
    rasters), or ``CLASS_<id>`` tags; ids without a name become ``class_<id>``.
    """
    names: dict[int, str] = {}
    raw = tags.get("classes", "")
    try:
        parsed = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, list):
        names = {i: str(n) for i, n in enumerate(parsed)}
    elif "=" in raw:
        for item in raw.split(","):
            key, _, name = item.partition("=")
            if key.strip().isdigit():
                names[int(key)] = name.strip()
    for key, value in tags.items():
        if key.startswith("CLASS_") and key[6:].isdigit():
            names.setdefault(int(key[6:]), value)
    return {i: names.get(i, f"class_{i}") for i in class_ids}


def mask_class_styles(tags: dict[str, str], colormap: dict[int, tuple[int, ...]] | None,
                      names: dict[int, str], ids: list[int]) -> list[ClassStyle] | None:
    """The classes ``ids`` as the mask shows them, for the polygons' QGIS style.

    Colours come from the ``class_colors`` tag (agriseg predict), else the mask's colour
    table, else a fixed colour per id. None when the tags name none of ``ids``: the style then
    lists the classes the polygons hold, rather than 254 ``class_<id>`` entries.
    """
    named = {i: names[i] for i in ids if i in names and names[i] != f"class_{i}"}
    if not named:
        return None
    colors: dict[int, tuple[int, ...]] = dict(colormap or {})
    try:
        listed = json.loads(tags.get("class_colors", "") or "null")
    except json.JSONDecodeError:
        listed = None
    if isinstance(listed, list):
        colors.update({i: tuple(c) for i, c in enumerate(listed)
                       if isinstance(c, list) and len(c) >= 3})
    return class_styles(named, colors)
