"""Strip-wise polygonization with seams merged: bounded memory, same polygons as one pass.

Each strip of the class mask is labelled into connected components per class (scipy) and
polygonized by GDAL in *pixel* coordinates, where every vertex is an integer, so pieces of one
region cut by a strip seam share their seam edge exactly and union cleanly. A union-find joins
pieces whose pixels touch across the seam (same class, 4- or 8-adjacent, matching the
polygonizer's connectivity); a region is finished — its pieces unioned once — as soon as it no
longer reaches the current strip's last row. Only regions that touch the seam are carried, so
memory holds two strips plus the open regions, and the output does not depend on the strip
height (``tests/vector/test_polygonize.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from scipy import ndimage
from shapely.geometry import shape

STRUCTURE = {4: ndimage.generate_binary_structure(2, 1), 8: np.ones((3, 3), dtype=bool)}


@dataclass
class Region:
    """One finished region: class, polygon in pixel coordinates, confidence sum and count."""

    class_id: int
    geometry: shapely.Geometry
    value_sum: float
    value_count: int


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def add(self, ids: Iterable[int]) -> None:
        for i in ids:
            self.parent[i] = i

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
        return min(ra, rb)

    def forget(self, ids: Iterable[int]) -> None:
        for i in ids:
            del self.parent[i]


def label_strip(strip: np.ndarray, classes: Collection[int], connectivity: int,
                first_id: int) -> tuple[np.ndarray, dict[int, int]]:
    """Global component ids (0 = not exported) and each id's class."""
    labels = np.zeros(strip.shape, dtype=np.int32)
    id_class: dict[int, int] = {}
    next_id = first_id
    present = np.flatnonzero(np.bincount(strip.ravel(), minlength=256))
    for c in (int(v) for v in present if int(v) in classes):
        sel = strip == c
        lab, n = ndimage.label(sel, structure=STRUCTURE[connectivity])
        labels[sel] = lab[sel] + (next_id - 1)
        id_class.update(dict.fromkeys(range(next_id, next_id + n), c))
        next_id += n
    return labels, id_class


def _seam_pairs(above: np.ndarray, below: np.ndarray, connectivity: int) -> np.ndarray:
    """Pairs of component ids that touch across a seam (callers check their classes)."""
    pairs = [np.stack([above, below], axis=1)]
    if connectivity == 8:
        pairs.append(np.stack([above[:-1], below[1:]], axis=1))
        pairs.append(np.stack([above[1:], below[:-1]], axis=1))
    p = np.concatenate(pairs)
    p = p[(p[:, 0] > 0) & (p[:, 1] > 0)]
    return np.unique(p, axis=0) if len(p) else p


def polygonize_strips(strips: Iterable[tuple[int, np.ndarray, np.ndarray | None]], *,
                      classes: Collection[int], connectivity: int = 4,
                      value_nodata: int = 255) -> Iterator[Region]:
    """Polygons of the ``classes`` regions of a mask given as ``(y0, rows, values)`` strips.

    Strips must come in order and cover the mask. ``values`` (optional, e.g. a confidence
    strip) are summed per region, skipping ``value_nodata``. Geometries are in pixel
    coordinates (x = column, y = row); apply the raster transform afterwards.
    """
    if connectivity not in STRUCTURE:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    classes = frozenset(int(c) for c in classes)
    uf = _UnionFind()
    pieces: dict[int, tuple[int, shapely.Geometry, float, int]] = {}
    groups: dict[int, list[int]] = {}  # root -> piece ids, for regions still open
    prev_last: np.ndarray | None = None
    next_id = 1
    for y0, strip, values in strips:
        labels, id_class = label_strip(strip, classes, connectivity, next_id)
        next_id += len(id_class)
        uf.add(id_class)
        _add_pieces(pieces, groups, labels, id_class, values, y0, connectivity, value_nodata)
        if prev_last is not None:
            for a, b in _seam_pairs(prev_last, labels[0], connectivity):
                if pieces[a][0] == pieces[b][0]:
                    _join(uf, groups, int(a), int(b))
        prev_last = labels[-1].copy()
        open_roots = {uf.find(int(i)) for i in np.unique(prev_last) if i}
        for root in [r for r in groups if r not in open_roots]:
            yield _finish(groups.pop(root), pieces, uf)
    for root in list(groups):
        yield _finish(groups.pop(root), pieces, uf)


def _add_pieces(pieces, groups, labels, id_class, values, y0, connectivity, value_nodata):
    if not id_class:
        return
    sums = counts = None
    if values is not None:
        ok = (labels > 0) & (values != value_nodata)
        n = max(id_class) + 1
        sums = np.bincount(labels[ok], weights=values[ok], minlength=n)
        counts = np.bincount(labels[ok], minlength=n)
    transform = Affine(1, 0, 0, 0, 1, y0)
    for geom, value in rasterio.features.shapes(labels, mask=labels > 0,
                                                connectivity=connectivity,
                                                transform=transform):
        i = int(value)
        s = float(sums[i]) if sums is not None else 0.0
        c = int(counts[i]) if counts is not None else 0
        pieces[i] = (id_class[i], shape(geom), s, c)
        groups[i] = [i]


def _join(uf: _UnionFind, groups: dict[int, list[int]], a: int, b: int) -> None:
    ra, rb = uf.find(a), uf.find(b)
    if ra == rb:
        return
    root = uf.union(ra, rb)
    other = rb if root == ra else ra
    groups[root].extend(groups.pop(other))


def _finish(ids: list[int], pieces: dict, uf: _UnionFind) -> Region:
    parts = [pieces.pop(i) for i in ids]
    uf.forget(ids)
    if len(parts) == 1:
        geom = parts[0][1]
    else:  # drop the vertices the seams left on straight edges, as one pass would have
        geom = shapely.simplify(shapely.union_all([p[1] for p in parts]), 0.0)
    if not geom.is_valid:  # 8-connected regions touch themselves at pixel corners
        geom = shapely.make_valid(geom, method="structure")
    return Region(class_id=parts[0][0], geometry=geom, value_sum=sum(p[2] for p in parts),
                  value_count=sum(p[3] for p in parts))
