"""Metres per CRS unit: the one conversion behind pixel sizes, areas and tolerances in metres.

A projected CRS says how long its unit is (metre, US survey foot...). A geographic CRS measures in
degrees, whose ground length depends on the latitude: one degree of longitude is
111,320 m x cos(latitude), one of latitude 110,574 m (spherical approximations, within about
0.5% on the WGS84 ellipsoid). Areas of polygons in a geographic CRS do not use this: they are
computed exactly in a local equal-area projection (:mod:`agriseg.vector.attributes`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pyproj import CRS

M_PER_DEG_LON_EQUATOR = 111_320.0
M_PER_DEG_LAT = 110_574.0


def metres_per_unit(crs: Any, lat: float = 0.0) -> tuple[float, float]:
    """Metres per unit of ``crs`` along x and y; ``lat`` (degrees) matters only when it is
    geographic. ``crs`` is anything pyproj accepts (a rasterio CRS, ``"EPSG:32634"``...)."""
    crs = CRS.from_user_input(crs)
    if crs.is_geographic:
        cos = max(math.cos(math.radians(lat)), 1e-6)  # a degree of longitude at the pole
        return M_PER_DEG_LON_EQUATOR * cos, M_PER_DEG_LAT
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return factor, factor


def row_pixel_areas_m2(crs: Any, transform: Any, rows: np.ndarray) -> np.ndarray:
    """Ground area (m²) of one pixel in each of the pixel ``rows`` of a raster.

    Constant in a projected CRS. In a geographic CRS a pixel's area shrinks with the cosine of
    its latitude, so each row gets the exact area of its pixel on the CRS's ellipsoid (north-up
    grids: the same for every column of a row). Without a CRS: the raster's own units.
    """
    rows = np.asarray(rows)
    det = abs(transform.a * transform.e - transform.b * transform.d)
    if crs is None:
        return np.full(len(rows), det)
    crs = CRS.from_user_input(crs)
    if not crs.is_geographic:
        return np.full(len(rows), det * metres_per_unit(crs)[0] ** 2)
    geod = crs.get_geod()
    out = np.empty(len(rows))
    for i, r in enumerate(rows):
        corners = [transform * (x, y) for x, y in ((0, r), (1, r), (1, r + 1), (0, r + 1))]
        out[i] = abs(geod.polygon_area_perimeter([c[0] for c in corners],
                                                 [c[1] for c in corners])[0])
    return out
