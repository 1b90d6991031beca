"""Coverage-preserving simplification: fewer vertices, and still no gaps or overlaps.

Simplifying each polygon on its own (Douglas-Peucker) moves a shared crop/weed boundary
differently on each side, opening slivers and overlaps that break area sums and sprayer maps.
GEOS's coverage simplification (Visvalingam-Whyatt on the shared edges of the whole coverage)
simplifies every shared edge once, so neighbours keep identical boundaries. It needs an
edge-matched coverage: callers insert a vertex at every pixel corner first, so T-junctions
between three regions exist as vertices on all their polygons.
"""

from __future__ import annotations

import logging

import numpy as np
import shapely
from pyproj import CRS

from agriseg.raster.units import metres_per_unit

log = logging.getLogger("agriseg")


def tolerance_in_crs_units(tolerance_m: float, crs: CRS | None, geoms: np.ndarray) -> float:
    """A length in metres expressed in the CRS's units (degrees near the data, if geographic)."""
    if crs is None:
        return tolerance_m
    crs = CRS.from_user_input(crs)
    _, ymin, _, ymax = shapely.total_bounds(geoms)
    return tolerance_m / metres_per_unit(crs, (ymin + ymax) / 2)[0]


def simplify_coverage(geoms: np.ndarray, tolerance_m: float, crs: CRS | None) -> np.ndarray:
    """Simplify polygons that tile without overlaps, keeping shared boundaries identical.

    ``tolerance_m`` is in metres. Outer boundaries (against background) are simplified too.
    """
    tol = tolerance_in_crs_units(tolerance_m, crs, geoms)
    out = shapely.coverage_simplify(geoms, tol, simplify_boundary=True)
    empty = shapely.is_empty(out)
    if empty.any():  # a sliver can collapse; keep its unsimplified shape rather than lose it
        log.debug("%d polygons collapsed when simplified; kept as they were", int(empty.sum()))
        out[empty] = geoms[empty]
    return out
