"""Coverage simplification with honest areas: fewer vertices, no gaps or overlaps, and no
polygon losing (or gaining) more than a bounded share of its area.

Simplifying each polygon on its own (Douglas-Peucker) moves a shared crop/weed boundary
differently on each side, opening slivers and overlaps. GEOS's coverage simplification
(Visvalingam-Whyatt on the shared edges of the whole coverage) simplifies every shared edge
once, so neighbours keep identical boundaries; it needs an edge-matched coverage
(:mod:`agriseg.vector.coverage`).

Left alone it cuts corners off small regions: a one-pixel weed becomes a half-area triangle,
and at 2 cm on a 1 cm mask the weed total shrank 4.45%. Those areas are what a sprayer or an
agronomist acts on, so the simplification here is bounded. Polygons whose area would change
by more than ``max_change`` (10%) are *frozen*: left out of the next round, so their edges
become the coverage's fixed boundary and they keep their exact shape, and so do their
neighbours along the shared edges. Then, per class, while the class total would change by
more than ``max_class_change`` (1%), the polygons moving it most are frozen too. Each round
freezes at least one more polygon, so this ends; in the worst case nothing is simplified.

Everything outside the exported polygons (background, classes not exported, no data) takes
part as one *filler* region, so edges against the background are simplified like shared edges
(and the raster's frame, the filler's outer boundary, never moves). It runs in pixel
coordinates, where areas are exact; the tolerance arrives in pixels.
"""

from __future__ import annotations

import logging

import numpy as np
import shapely

from agriseg.vector.coverage import Junctions, match_vertices

log = logging.getLogger("agriseg")
MAX_CHANGE = 0.10  # per polygon
MAX_CLASS_CHANGE = 0.01  # per class total
MIN_TOLERANCE_PX = 0.5  # below it Visvalingam-Whyatt removes nothing on a pixel grid
_MARGIN = 0.999  # areas are compared in pixels; metres may differ in the 6th digit


def simplify_coverage(geoms: np.ndarray, classes: np.ndarray, tolerance_px: float,
                      junctions: Junctions, *, max_change: float = MAX_CHANGE,
                      max_class_change: float = MAX_CLASS_CHANGE) -> np.ndarray:
    """Simplify edge-matched pixel-coordinate polygons that tile without overlaps.

    ``classes`` gives each polygon's class (totals are bounded per class). The result has one
    non-empty geometry per input, still edge-matched, each within ``max_change`` of its
    area, each class total within ``max_class_change``. Polygons kept exact at the tolerance
    are tried again at half of it, and so on down to half a pixel, so a coarser tolerance
    never leaves more vertices because more polygons had to stay exact.
    """
    if len(geoms) == 0 or tolerance_px <= 0:
        return geoms
    bounds = (shapely.area(geoms), classes, max_change * _MARGIN, max_class_change * _MARGIN)
    out, filler = geoms.copy(), _filler(geoms, junctions)
    todo = np.ones(len(geoms), dtype=bool)
    tol, rounds = tolerance_px, 0
    while todo.any() and tol >= MIN_TOLERANCE_PX:
        out, filler, todo, n = _bounded(out, filler, todo, tol, *bounds)
        rounds += n
        tol /= 2
    log.debug("simplified %d of %d polygons in %d round(s) (down to a tolerance of %.2g px); "
              "%d kept exact to bound their area change", len(geoms) - int(todo.sum()),
              len(geoms), rounds, tol * 2, int(todo.sum()))
    return out


def _bounded(geoms: np.ndarray, filler: np.ndarray, todo: np.ndarray, tol: float,
             area0: np.ndarray, classes: np.ndarray, max_change: float,
             max_class_change: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Simplify the ``todo`` polygons (the others and the frame stay fixed), freezing those
    that break a bound until none does: returns the polygons, the filler, the frozen ones
    (still exact) and the number of rounds."""
    frozen = np.zeros(len(geoms), dtype=bool)
    rounds = 0
    while True:  # each round freezes at least one more polygon, or ends
        rounds += 1
        out, new_filler = geoms.copy(), filler
        free = todo & ~frozen
        if free.any():
            k = int(free.sum())
            simplified = shapely.coverage_simplify(np.concatenate([geoms[free], filler]), tol,
                                                   simplify_boundary=False)
            out[free], new_filler = simplified[:k], simplified[k:]
        change = shapely.area(out) - area0
        more = free & (np.abs(change) > max_change * area0)
        if not more.any():
            more = _over_class_bound(change, area0, classes, free, max_class_change)
        if not more.any():
            return out, new_filler[~shapely.is_empty(new_filler)], frozen, rounds
        frozen |= more


def _filler(geoms: np.ndarray, junctions: Junctions) -> np.ndarray:
    """Everything in the raster's frame that no polygon covers, edge-matched to them."""
    frame = shapely.box(0, 0, junctions.width, junctions.height)
    rest = shapely.difference(frame, shapely.coverage_union_all(geoms))
    parts = shapely.get_parts(rest)
    parts = parts[shapely.get_type_id(parts) == 3]  # overlay may leave no polygon at all
    return match_vertices(parts, junctions) if len(parts) else parts


def _over_class_bound(change: np.ndarray, area0: np.ndarray, classes: np.ndarray,
                      movable: np.ndarray, bound: float) -> np.ndarray:
    """Polygons to freeze so that each class total comes back within ``bound``: the ones
    moving it most, until what is left moves it by at most half the bound."""
    more = np.zeros(len(change), dtype=bool)
    for c in np.unique(classes):
        sel = np.flatnonzero(classes == c)
        total, net = area0[sel].sum(), change[sel].sum()
        if abs(net) <= bound * total:
            continue
        cand = sel[movable[sel] & (np.sign(change[sel]) == np.sign(net))]
        cand = cand[np.argsort(-np.abs(change[cand]), kind="stable")]
        left = np.abs(net) - np.cumsum(np.abs(change[cand]))
        n = int(np.searchsorted(-left, -bound * total / 2)) + 1
        more[cand[:n]] = True
    return more
