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


def junction_keys(y0: int, rows: np.ndarray, above: np.ndarray | None,
                  below: np.ndarray | None) -> np.ndarray:
    """Sorted keys of the junctions on corner rows ``y0 .. y0 + len(rows)`` of a strip.

    ``above``/``below``: the mask row just above/below the strip, None at the raster's edge.
    """
    outside = np.full(rows.shape[1], OUTSIDE, dtype=np.int16)
    stack = np.vstack([outside if above is None else above.astype(np.int16),
                       rows.astype(np.int16),
                       outside if below is None else below.astype(np.int16)])
    ys, xs = np.nonzero(_three_or_more(stack[:-1], stack[1:]))
    return (ys + y0).astype(np.int64) * (rows.shape[1] + 1) + xs


class Junctions:
    """Junction corners of a mask, fed as sorted key arrays in row order (each array's keys
    above the previous ones'); a corner is ``(x, y)`` in pixel coordinates (0..width,
    0..height), keyed as ``y * (width + 1) + x``."""

    def __init__(self, width: int, height: int, keys: np.ndarray | None = None) -> None:
        self.width, self.height = width, height
        self._parts: list[np.ndarray] = []
        self._keys = np.zeros(0, dtype=np.int64)  # row-major: y * (width + 1) + x, sorted
        self._cols = np.zeros(0, dtype=np.int64)  # the same, column-major: x * (height + 1) + y
        self._last = -1
        if keys is not None:
            self.add(keys)

    def add(self, keys: np.ndarray) -> None:
        """Take the next rows' junction keys (sorted, all above those taken before)."""
        if not len(keys):
            return
        keys = np.asarray(keys, dtype=np.int64)
        if keys[0] <= self._last:
            raise ValueError(f"junction keys must come in increasing order: {keys[0]} after "
                             f"{self._last}")
        self._parts.append(keys)
        self._last = int(keys[-1])

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Which of the corner ``keys`` are junctions."""
        self._consolidate()
        if not len(self._keys):
            return np.zeros(len(keys), dtype=bool)
        at = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return self._keys[at] == keys

    def on_edges(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Junctions strictly between the corners ``a`` and ``b`` of axis-parallel edges.

        Per edge, the index range ``[lo, hi)`` of its junctions for :meth:`points`, in which
        they are sorted along the edge (ascending x for horizontal edges, y for vertical).
        """
        self._consolidate()
        horizontal = a[:, 1] == b[:, 1]
        lo_xy, hi_xy = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
        w1, h1 = self.width + 1, self.height + 1
        rows = (np.searchsorted(self._keys, lo_xy[:, 1] * w1 + lo_xy[:, 0] + 1),
                np.searchsorted(self._keys, hi_xy[:, 1] * w1 + hi_xy[:, 0]))
        cols = (np.searchsorted(self._cols, lo_xy[:, 0] * h1 + lo_xy[:, 1] + 1),
                np.searchsorted(self._cols, hi_xy[:, 0] * h1 + hi_xy[:, 1]))
        n = len(self._keys)
        return (np.where(horizontal, rows[0], cols[0] + n),
                np.where(horizontal, rows[1], cols[1] + n))

    def near(self, bounds: np.ndarray, block: int = 4) -> np.ndarray:
        """Which of the boxes ``bounds`` (rows of xmin, ymin, xmax, ymax) may hold a junction
        (on their edges included): a summed-area table over ``block``-pixel blocks of the
        rows that have junctions, so never a false no."""
        self._consolidate()
        if not len(self._keys) or not len(bounds):
            return np.zeros(len(bounds), dtype=bool)
        w1 = self.width + 1
        rows, cols = self._keys // w1 // block, self._keys % w1 // block
        first = int(rows[0])  # keys are sorted: rows[0] is the smallest
        shape = (int(rows[-1]) - first + 1, self.width // block + 1)
        table = np.zeros((shape[0] + 1, shape[1] + 1), dtype=np.int64)
        np.add.at(table, (rows - first + 1, cols + 1), 1)
        table = table.cumsum(0).cumsum(1)
        b = np.asarray(bounds, dtype=np.int64) // block
        x0, x1 = np.clip(b[:, 0], 0, shape[1]), np.clip(b[:, 2] + 1, 0, shape[1])
        y0, y1 = np.clip(b[:, 1] - first, 0, shape[0]), np.clip(b[:, 3] - first + 1, 0, shape[0])
        return (table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]) > 0

    def points(self, index: np.ndarray) -> np.ndarray:
        """Corners (x, y) by :meth:`on_edges` index: the row-major keys, then the
        column-major ones."""
        w1, h1 = self.width + 1, self.height + 1
        key = np.concatenate([self._keys, self._cols])[index]
        row = index < len(self._keys)
        x = np.where(row, key % w1, key // h1)
        y = np.where(row, key // w1, key % h1)
        return np.column_stack([x, y]).astype(np.float64)

    def _consolidate(self) -> None:
        if self._parts:
            self._keys = np.concatenate([self._keys, *self._parts])
            self._parts = []
            w1, h1 = self.width + 1, self.height + 1
            self._cols = np.sort((self._keys % w1) * h1 + self._keys // w1)

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


def match_vertices(geoms: np.ndarray, junctions: Junctions, *,
                   turns_only: bool = False) -> np.ndarray:
    """Rebuild pixel-coordinate polygons with a vertex at every turn and every junction.

    ``geoms`` are Polygons/MultiPolygons whose edges run along pixel edges (as the polygonizer
    makes them, seams merged). Each ring keeps its turning corners and the junctions among its
    vertices, drops other collinear vertices, gains the junctions that lie on its edges, and
    starts at a turning corner. The work is per vertex and per junction, never per pixel.

    ``turns_only``: the rings already hold only turning corners and start at one (GDAL's
    polygonizer makes them so), so polygons with no junction near them are kept as they are
    (most of them: 71% of the pieces of a crop/weed mask are left out this way).
    """
    if len(geoms) == 0:
        return geoms
    if turns_only:
        need = junctions.near(shapely.bounds(geoms))
        if not need.all():
            out = geoms.copy()
            if need.any():
                out[need] = match_vertices(geoms[need], junctions)
            return out
    typ, coords, offsets = shapely.to_ragged_array(geoms)
    v, ring = _turns_and_junctions(np.rint(coords), offsets[0], junctions)
    nxt = np.arange(len(v)) + 1  # each kept vertex's successor in its ring, cyclically
    last = np.flatnonzero(np.diff(np.append(ring, -1)) != 0)
    first = np.concatenate([[0], last[:-1] + 1])
    nxt[last] = first
    lo, hi = junctions.on_edges(v, v[nxt])
    extra = hi - lo  # junctions strictly inside each edge
    ascending = (v[nxt] - v).sum(axis=1) > 0
    per_vertex = 1 + extra
    total = int(per_vertex.sum())
    starts = np.cumsum(per_vertex) - per_vertex
    out_vertex = np.repeat(np.arange(len(v)), per_vertex)
    k = np.arange(total) - starts[out_vertex]  # 0: the vertex itself, 1..: inserted ones
    pts = v[out_vertex].copy()
    ins = k > 0
    e = out_vertex[ins]
    index = np.where(ascending[e], lo[e] + k[ins] - 1, hi[e] - k[ins])
    pts[ins] = junctions.points(index)
    ring_out = ring[out_vertex]
    counts = np.bincount(ring_out, minlength=len(offsets[0]) - 1)
    out_off = np.concatenate([[0], np.cumsum(counts + 1)])
    out = np.empty((out_off[-1], 2))
    ring_start = np.cumsum(counts) - counts
    out[np.repeat(out_off[:-1], counts) + np.arange(total) - np.repeat(ring_start,
                                                                       counts)] = pts
    out[out_off[1:] - 1] = pts[ring_start]  # close each ring
    return shapely.from_ragged_array(typ, out, (out_off, *offsets[1:]))


def _turns_and_junctions(coords: np.ndarray, ring_off: np.ndarray, junctions: Junctions
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The turning and junction vertices of every ring (open, each starting at a turning
    corner) and the ring each belongs to."""
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
    np.minimum.at(first, ring[turn], pos[turn])
    order = np.lexsort(((pos - first[ring]) % size, ring))
    kept = order[keep[order]]
    return v[kept], ring[kept]
