"""Strip-wise polygonization with seams merged: bounded memory, same polygons as one pass.

Each strip of the class mask is labelled into connected components per class (scipy) and
polygonized by GDAL in *pixel* coordinates, where every vertex is an integer, so pieces of one
region cut by a strip seam share their seam edge exactly and union cleanly. Pieces that touch
neither seam are whole regions and pass straight through; the others go to a union-find that
joins pieces whose pixels touch across the seam (same class, 4- or 8-adjacent, matching the
polygonizer's connectivity). A region is finished — its pieces unioned once — as soon as it no
longer reaches the current strip's last row. Memory holds a few strips plus the open regions,
and the output does not depend on the strip height (``tests/vector/test_polygonize.py``).

Labelling and polygonizing a strip is independent of every other strip, so with ``workers``
it runs in worker processes (started by a fork server, never forked from this process, which
may hold torch's threads; geometries travel back as WKB) while this process joins seams:
polygon building is per-polygon Python work that one core cannot hurry.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import sys
import types
from collections import deque
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from scipy import ndimage

from agriseg.vector.coverage import Junctions, junction_keys, match_vertices

STRUCTURE = {4: ndimage.generate_binary_structure(2, 1), 8: np.ones((3, 3), dtype=bool)}
ID_BITS = 32  # global piece id = strip index << ID_BITS | id within the strip
Edges = tuple[np.ndarray | None, np.ndarray | None]  # the mask rows above and below a strip


@dataclass
class Regions:
    """Finished regions, as parallel arrays (geometries in pixel coordinates)."""

    class_ids: np.ndarray
    geoms: np.ndarray
    value_sums: np.ndarray
    value_counts: np.ndarray
    matched: np.ndarray  # valid and edge-matched already (see agriseg.vector.coverage)

    def __len__(self) -> int:
        return len(self.class_ids)

    @classmethod
    def concat(cls, parts: list[Regions]) -> Regions:
        if not parts:
            return cls(np.zeros(0, np.int32), np.zeros(0, object), np.zeros(0), np.zeros(0),
                       np.zeros(0, bool))
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("class_ids", "geoms", "value_sums", "value_counts", "matched")))


@dataclass
class StripPieces:
    """One strip's pieces: their classes, polygons, value sums and seam rows of labels."""

    classes: np.ndarray  # class of piece i + 1
    geoms: np.ndarray
    sums: np.ndarray
    counts: np.ndarray
    first_row: np.ndarray  # labels (1-based piece ids, 0 = none) of the strip's first row
    last_row: np.ndarray
    junctions: np.ndarray | None = None  # keys of the junctions on its corner rows


def label_strip(strip: np.ndarray, classes: Collection[int], connectivity: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Piece ids 1..n (0 = not exported) and the class of each piece."""
    labels = np.zeros(strip.shape, dtype=np.int32)
    piece_class: list[np.ndarray] = []
    n_total = 0
    present = np.flatnonzero(np.bincount(strip.ravel(), minlength=256))
    for c in (int(v) for v in present if int(v) in classes):
        sel = strip == c
        lab, n = ndimage.label(sel, structure=STRUCTURE[connectivity])
        labels[sel] = lab[sel] + n_total
        piece_class.append(np.full(n, c, dtype=np.int32))
        n_total += n
    return labels, (np.concatenate(piece_class) if piece_class else np.zeros(0, np.int32))


def polygonize_strip(y0: int, strip: np.ndarray, values: np.ndarray | None,
                     classes: Collection[int], connectivity: int, value_nodata: int,
                     as_wkb: bool = False, edges: Edges | None = None) -> StripPieces:
    """Label and polygonize one strip (pure: safe to run in a worker process).

    With ``edges`` (the mask rows just above and below the strip, None at the raster's edge)
    the pieces are also made valid and edge-matched here, and the strip's junctions come back
    (those of its last corner row only at the raster's bottom: the next strip reports them).
    """
    labels, piece_class = label_strip(strip, classes, connectivity)
    n = len(piece_class)
    geoms = np.empty(n, dtype=object)
    for geom, value in rasterio.features.shapes(labels, mask=labels > 0,
                                                connectivity=connectivity,
                                                transform=Affine(1, 0, 0, 0, 1, y0)):
        geoms[int(value) - 1] = _polygon(geom["coordinates"])
    keys = None
    if edges is not None:
        above, below = edges
        keys = junction_keys(y0, strip, above, below)
        bottom = y0 + len(strip)
        if n:
            geoms = match_vertices(valid(geoms), Junctions(strip.shape[1], bottom, keys),
                                   turns_only=True)
        if below is not None:
            keys = keys[keys < bottom * (strip.shape[1] + 1)]
    sums, counts = np.zeros(n), np.zeros(n, dtype=np.int64)
    if values is not None and n:
        ok = (labels > 0) & (values != value_nodata)
        sums = np.bincount(labels[ok], weights=values[ok], minlength=n + 1)[1:]
        counts = np.bincount(labels[ok], minlength=n + 1)[1:]
    if as_wkb:
        geoms = shapely.to_wkb(geoms)
    return StripPieces(piece_class, geoms, sums, counts, labels[0].copy(), labels[-1].copy(),
                       keys)


def valid(geoms: np.ndarray) -> np.ndarray:
    """Polygons made valid: 8-connected regions touch themselves at pixel corners."""
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms = geoms.copy()
        geoms[bad] = shapely.make_valid(geoms[bad], method="structure")
    return geoms


def _polygon(rings: list) -> shapely.Polygon:
    """GeoJSON-style rings to a polygon without per-coordinate Python work."""
    shell = shapely.linearrings(np.asarray(rings[0], dtype=np.float64))
    if len(rings) == 1:
        return shapely.polygons(shell)
    holes = [shapely.linearrings(np.asarray(r, dtype=np.float64)) for r in rings[1:]]
    return shapely.polygons(shell, holes)


def polygonize_strips(strips: Iterable[tuple[int, np.ndarray, np.ndarray | None]], *,
                      classes: Collection[int], connectivity: int = 4,
                      value_nodata: int = 255, workers: int = 0,
                      junctions: Junctions | None = None) -> Iterator[Regions]:
    """Regions of the ``classes`` of a mask given as ``(y0, rows, values)`` strips, in order.

    ``values`` (optional, e.g. a confidence strip) are summed per region, skipping
    ``value_nodata``. Geometries are in pixel coordinates (x = column, y = row); apply the
    raster transform afterwards. ``workers`` > 0 polygonizes strips in that many processes.
    With ``junctions`` (an empty :class:`~agriseg.vector.coverage.Junctions` of the mask's
    size) the strips also edge-match their pieces and fill it with the mask's junctions;
    regions whose pieces were joined across a seam (``matched`` False) are left for the
    caller to match against it, which is complete for every region already yielded.
    """
    if connectivity not in STRUCTURE:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    classes = frozenset(int(c) for c in classes)
    seams = _SeamJoiner(connectivity, matched=junctions is not None)
    for index, (p, is_last) in enumerate(_map_ordered(strips, classes, connectivity,
                                                      value_nodata, workers,
                                                      junctions is not None)):
        if junctions is not None:
            junctions.add(p.junctions)
        yield seams.add(index, p, top=index > 0, bottom=not is_last)
    yield seams.close()


def _with_edges(strips: Iterable[tuple[int, np.ndarray, np.ndarray | None]], match: bool
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None, Edges | None]]:
    """Each strip with the mask rows just above and below it (one strip read ahead)."""
    if not match:
        for y0, rows, values in strips:
            yield y0, rows, values, None
        return
    above, held = None, None
    for y0, rows, values in strips:
        if held is not None:
            yield (*held, (above, rows[0].copy()))
            above = held[1][-1].copy()
        held = (y0, rows, values)
    if held is not None:
        yield (*held, (above, None))


def _map_ordered(strips, classes, connectivity, value_nodata, workers, match
                 ) -> Iterator[tuple[StripPieces, bool]]:
    """``(pieces, is_last)`` per strip, polygonized here or in worker processes, in order.

    Runs one strip behind, so the caller knows when a strip is the last (its bottom is then
    the raster's edge, not a seam).
    """
    def results() -> Iterator[StripPieces]:
        if workers <= 0:
            for y0, rows, values, edges in _with_edges(strips, match):
                yield polygonize_strip(y0, rows, values, classes, connectivity, value_nodata,
                                       edges=edges)
            return
        with main_not_reimported(), \
                cf.ProcessPoolExecutor(workers, mp_context=worker_context()) as pool:
            window: deque[cf.Future] = deque()
            for y0, rows, values, edges in _with_edges(strips, match):
                window.append(pool.submit(polygonize_strip, y0, rows, values, classes,
                                          connectivity, value_nodata, True, edges))
                if len(window) > workers + 1:  # bounded read-ahead
                    yield _unwkb(window.popleft())
            while window:
                yield _unwkb(window.popleft())

    last = None
    for p in results():
        if last is not None:
            yield last, False
        last = p
    if last is not None:
        yield last, True


def worker_context() -> multiprocessing.context.BaseContext:
    """Start workers from a clean server process, never by forking this one.

    The caller may run torch's or GDAL's threads (``agriseg map`` vectorizes right after
    inference); a fork copies their locks in whatever state they are, and a child can hang on
    one. ``forkserver`` forks from a small process that has imported only this module (so a
    worker starts in milliseconds); platforms without it spawn.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def main_not_reimported() -> Iterator[None]:
    """Start workers without re-running the caller's ``__main__``.

    A worker that is not forked from its parent re-imports the parent's main script, which
    re-runs any top-level code of a script without an ``if __name__ == "__main__":`` guard,
    and a script that calls ``agriseg.vectorize`` at the top level would then fail. The workers
    need only this module (preloaded by the fork server), so while they start, ``__main__`` is
    a bare module with nothing to re-import. Nothing outside agriseg runs meanwhile.
    """
    real = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = real


def _unwkb(future: cf.Future) -> StripPieces:
    p = future.result()
    p.geoms = shapely.from_wkb(p.geoms)
    return p


class _SeamJoiner:
    """Joins pieces across seams with a union-find; only seam-touching pieces enter it."""

    def __init__(self, connectivity: int, matched: bool = False) -> None:
        self.connectivity = connectivity
        self.matched = matched  # pieces arrive edge-matched: so are the unjoined ones
        self.parent: dict[int, int] = {}
        self.groups: dict[int, list[int]] = {}  # root -> ids of an open region's pieces
        self.data: dict[int, tuple[int, shapely.Geometry, float, int]] = {}
        self.prev_last: np.ndarray | None = None  # global ids along the previous strip's bottom

    def add(self, index: int, p: StripPieces, top: bool, bottom: bool) -> Regions:
        """Take strip ``index``'s pieces; return the regions finished by it."""
        base = np.int64(index) << ID_BITS
        on_seam = np.zeros(len(p.classes) + 1, dtype=bool)
        if top:
            on_seam[p.first_row] = True
        if bottom:
            on_seam[p.last_row] = True
        on_seam = on_seam[1:]
        done = [Regions(p.classes[~on_seam], p.geoms[~on_seam], p.sums[~on_seam],
                        p.counts[~on_seam], np.full(int((~on_seam).sum()), self.matched))]
        for i in np.flatnonzero(on_seam):
            gid = int(base + i + 1)
            self.parent[gid] = gid
            self.groups[gid] = [gid]
            self.data[gid] = (int(p.classes[i]), p.geoms[i], float(p.sums[i]),
                              int(p.counts[i]))
        if top and self.prev_last is not None:
            first = np.where(p.first_row > 0, p.first_row + base, 0)
            for a, b in _seam_pairs(self.prev_last, first, self.connectivity):
                if self.data[int(a)][0] == self.data[int(b)][0]:
                    self._join(int(a), int(b))
        self.prev_last = np.where(p.last_row > 0, p.last_row + base, 0) if bottom else None
        open_roots = set() if not bottom else {
            self._find(int(i)) for i in np.unique(self.prev_last) if i}
        done += [self._finish(r) for r in [r for r in self.groups if r not in open_roots]]
        return Regions.concat(done)

    def close(self) -> Regions:
        return Regions.concat([self._finish(r) for r in list(self.groups)])

    def _find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def _join(self, a: int, b: int) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            root, other = min(ra, rb), max(ra, rb)
            self.parent[other] = root
            self.groups[root].extend(self.groups.pop(other))

    def _finish(self, root: int) -> Regions:
        ids = self.groups.pop(root)
        parts = [self.data.pop(i) for i in ids]
        for i in ids:
            del self.parent[i]
        if len(parts) == 1:
            geom = parts[0][1]
        else:  # drop the vertices the seams left on straight edges, as one pass would have
            geom = shapely.simplify(shapely.union_all([q[1] for q in parts]), 0.0)
        return Regions(np.array([parts[0][0]], np.int32), np.array([geom], dtype=object),
                       np.array([sum(q[2] for q in parts)]),
                       np.array([sum(q[3] for q in parts)]),
                       np.array([self.matched and len(parts) == 1]))


def _seam_pairs(above: np.ndarray, below: np.ndarray, connectivity: int) -> np.ndarray:
    """Pairs of piece ids that touch across a seam (callers check their classes)."""
    pairs = [np.stack([above, below], axis=1)]
    if connectivity == 8:
        pairs.append(np.stack([above[:-1], below[1:]], axis=1))
        pairs.append(np.stack([above[1:], below[:-1]], axis=1))
    p = np.concatenate(pairs)
    p = p[(p[:, 0] > 0) & (p[:, 1] > 0)]
    return np.unique(p, axis=0) if len(p) else p
