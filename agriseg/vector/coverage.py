"""Edge-matched polygons: both sides of every shared edge have exactly the same vertices.

A class mask's regions tile the raster, and GIS tools (``shapely.coverage_is_valid``, QGIS's
topology checker, coverage simplification) expect their polygons to say so: a shared boundary
must be the same chain of vertices in both polygons. GDAL's polygonizer (and rasterio's
``shapes``) keep only the corners where a polygon's own boundary turns. Where three regions
meet, the region whose boundary runs straight through the meeting point has no vertex there
while its neighbours do (a T-junction), so the two sides of the shared edge differ. Once
reprojected, the straight edge bows away from the neighbours' vertex and the polygons overlap
or leave gaps.

The fix works in pixel coordinates, where every vertex is a pixel corner: a corner is a
*junction* when three or more distinct labels (classes, no data, or "outside the raster") meet
around it. Each ring keeps exactly its turning corners plus the junctions on it. Two regions
that share an edge then have the same vertices along it, because along a shared edge a region
turns only where the other one turns too or where a third label meets (a junction). The
vertices are then transformed one by one, so identical vertices stay identical in any CRS.
"""

from __future__ import annotations

import numpy as np
import shapely

OUTSIDE = 256  # the label of everything beyond the raster's edge (no class id can be 256)


class Junctions:
    """Junction corners of a mask fed strip by strip, in order; a corner is ``(x, y)`` in
    pixel coordinates (0..width, 0..height), keyed as ``y * (width + 1) + x``."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._prev = np.full(width, OUTSIDE, dtype=np.int16)  # the row above the next strip
        self._next_row = 0
        self._parts: list[np.ndarray] = []
        self._keys = np.zeros(0, dtype=np.int64)

    def add(self, y0: int, rows: np.ndarray) -> None:
        """Take mask rows ``y0 .. y0 + len(rows)``, which must follow the previous ones."""
        if y0 != self._next_row:
            raise ValueError(f"strips must come in order: got row {y0}, expected "
                             f"{self._next_row}")
        rows = rows.astype(np.int16)
        above = np.vstack([self._prev[None], rows[:-1]])
        below = rows
        if y0 + len(rows) == self.height:  # the bottom edge's corners too
            above = np.vstack([above, rows[-1:]])
            below = np.vstack([below, np.full((1, self.width), OUTSIDE, np.int16)])
        ys, xs = np.nonzero(_three_or_more(above, below))
        if len(ys):  # keys grow with the row, so the parts stay in sorted order
            self._parts.append((ys + y0).astype(np.int64) * (self.width + 1) + xs)
        self._prev = rows[-1].copy()
        self._next_row = y0 + len(rows)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        if self._parts:
            self._keys = np.concatenate([self._keys, *self._parts])
            self._parts = []
        if not len(self._keys):
            return np.zeros(len(keys), dtype=bool)
        at = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return self._keys[at] == keys

    def __len__(self) -> int:
        return len(self._keys) + sum(len(p) for p in self._parts)


def _three_or_more(above: np.ndarray, below: np.ndarray) -> np.ndarray:
    """For each corner between two pixel rows (columns padded with OUTSIDE): do three or more
    distinct labels meet there?"""
    pad = np.full((above.shape[0], 1), OUTSIDE, dtype=np.int16)
    above, below = np.hstack([pad, above, pad]), np.hstack([pad, below, pad])
    a, b, c, d = above[:, :-1], above[:, 1:], below[:, :-1], below[:, 1:]
    distinct = (1 + (b != a) + ((c != a) & (c != b)) + ((d != a) & (d != b) & (d != c)))
    return distinct >= 3


def match_vertices(geoms: np.ndarray, junctions: Junctions) -> np.ndarray:
    """Rebuild pixel-coordinate polygons with a vertex at every turn and every junction.

    ``geoms`` are Polygons/MultiPolygons whose edges run along pixel edges (as the polygonizer
    makes them, seams merged). Every ring is cut at each pixel corner, and only its turning
    corners and the junctions stay; a ring starts at a turning corner.
    """
    if len(geoms) == 0:
        return geoms
    typ, coords, offsets = shapely.to_ragged_array(shapely.segmentize(geoms, 1.0))
    coords = np.rint(coords)  # segmentize interpolates; the corners are integers
    ring_off = offsets[0]
    lens = np.diff(ring_off) - 1  # open ring lengths (the closing vertex repeats the first)
    n_rings = len(lens)
    ring = np.repeat(np.arange(n_rings), lens)
    start = np.repeat(ring_off[:-1], lens)
    size = np.repeat(lens, lens)
    pos = np.arange(len(ring)) - np.repeat(np.cumsum(lens) - lens, lens)
    v = coords[start + pos]
    d_in = v - coords[start + (pos - 1) % size]
    d_out = coords[start + (pos + 1) % size] - v
    turn = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0] != 0
    keys = v[:, 1].astype(np.int64) * (junctions.width + 1) + v[:, 0].astype(np.int64)
    keep = turn | junctions.contains(keys)
    first = np.full(n_rings, np.iinfo(np.int64).max)
    np.minimum.at(first, ring[turn], pos[turn])  # start each ring at a turning corner
    order = np.lexsort(((pos - first[ring]) % size, ring))
    kept = order[keep[order]]
    counts = np.bincount(ring[kept], minlength=n_rings)
    out_off = np.concatenate([[0], np.cumsum(counts + 1)])
    out = np.empty((out_off[-1], 2))
    ring_start = np.cumsum(counts) - counts
    out[np.repeat(out_off[:-1], counts) + np.arange(len(kept)) - np.repeat(ring_start,
                                                                           counts)] = v[kept]
    out[out_off[1:] - 1] = v[kept][ring_start]  # close each ring
    return shapely.from_ragged_array(typ, out, (out_off, *offsets[1:]))
