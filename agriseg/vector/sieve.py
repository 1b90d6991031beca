"""Exact, streaming sieve for class masks: merge small regions before polygonizing.

``rasterio.features.sieve`` (GDAL) holds the whole mask in memory; a 50,000 x 50,000 field does not
fit. :func:`sieve_strips` reads the mask twice in row strips. Pass 1 labels each class's connected
regions strip by strip, joins them across seams and records per region its pixel count, first
pixel, border contact and shared boundary with each neighbour; the merge is then resolved in memory
proportional to the number of regions; pass 2 relabels each strip and yields the final classes.
Small regions merge, smallest first, into their largest neighbour (GDAL's rule), so no hole is left
where a speck was; ties go by raster position, never by strip, so the output does not depend on
``strip_rows``. Nodata is never a region, never absorbs one and never changes.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from agriseg.errors import ConfigError

ReadStrip = Callable[[int, int], np.ndarray]
_BIG = np.iinfo(np.int64).max
_ALL, _HEAD, _TAIL = slice(None), slice(None, -1), slice(1, None)


def sieve_strips(read_strip: ReadStrip, height: int, width: int, *, min_px: int = 0,
                 fill_px: int = 0, connectivity: int = 4, nodata: int = 255, background: int = 0,
                 strip_rows: int = 256) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(y0, strip)``: the sieved mask in order, strips of ``strip_rows`` rows (the last
    may be shorter).

    ``read_strip(y0, n)`` returns mask rows ``y0 .. y0 + n`` as an ``(n, width)`` uint8 array; it
    is called twice per strip (two passes) and must return the same data both times. Regions
    (connected pixels of one class, ``connectivity`` 4 or 8) smaller than ``min_px`` pixels, and
    ``background`` regions smaller than ``fill_px`` that do not touch the raster border (holes),
    are merged into the neighbour with the most pixels (then the longest shared boundary, then the
    first in raster order). A region whose only neighbours are nodata or the border stays.
    """
    if connectivity not in (4, 8):
        raise ConfigError(f"connectivity {connectivity!r} is not supported; use 4 or 8")
    for name, value in (("min_px", min_px), ("fill_px", fill_px)):
        if value < 0:
            raise ConfigError(f"{name} {value} is negative; use 0 (off) or a pixel count")
    if strip_rows < 1:
        raise ConfigError(f"strip_rows {strip_rows} must be at least 1")
    if min_px <= 1 and fill_px <= 1:  # no region has fewer than one pixel
        return (s for s in _strips(read_strip, height, width, strip_rows))
    return _sieve(read_strip, height, width, min_px, fill_px, connectivity == 8, nodata,
                  background, strip_rows)


def _sieve(read_strip: ReadStrip, height: int, width: int, min_px: int, fill_px: int,
           diag: bool, nodata: int, background: int,
           strip_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    scan = _scan(_strips(read_strip, height, width, strip_rows), height, width, diag, nodata)
    final = _resolve(scan, min_px, fill_px, background)
    changed = final != _cat(scan.cls, np.uint8)
    structure = _structure(diag)
    strips = _strips(read_strip, height, width, strip_rows)
    for (y0, strip), runs in zip(strips, scan.runs, strict=True):
        out = strip
        for cls, start, count in runs:
            if not changed[start:start + count].any():
                continue
            labels = np.zeros(strip.shape, np.int32)
            m = strip == cls
            if ndimage.label(m, structure, output=labels) != count:
                raise RuntimeError(f"mask rows {y0}+ changed between the two sieve passes")
            out = strip.copy() if out is strip else out
            lut = np.concatenate(([cls], final[start:start + count])).astype(np.uint8)
            np.copyto(out, lut[labels], where=m)
        yield y0, out


def _strips(read_strip: ReadStrip, height: int, width: int,
            strip_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    for y0 in range(0, height, strip_rows):
        n = min(strip_rows, height - y0)
        strip = np.asarray(read_strip(y0, n))
        if strip.shape != (n, width) or strip.dtype != np.uint8:
            raise ValueError(f"read_strip({y0}, {n}) returned {strip.dtype} {strip.shape}; "
                             f"expected uint8 {(n, width)}")
        yield y0, strip


def _cat(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)


def _structure(diag: bool) -> np.ndarray:
    return np.ones((3, 3), bool) if diag else ndimage.generate_binary_structure(2, 1)


@dataclass
class _Scan:
    """Pass-1 result, per piece (a region's part within one strip, numbered strip by strip)."""

    runs: list[list[tuple[int, int, int]]] = field(default_factory=list)  # (class, start, count)
    size: list[np.ndarray] = field(default_factory=list)
    cls: list[np.ndarray] = field(default_factory=list)
    border: list[np.ndarray] = field(default_factory=list)
    first: list[np.ndarray] = field(default_factory=list)  # first pixel, flat raster index
    edges: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    seams: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # same region
    n: int = 0


def _scan(strips: Iterator[tuple[int, np.ndarray]], height: int, width: int, diag: bool,
          nodata: int) -> _Scan:
    """Pass 1: label every strip, accumulate piece statistics, edges and seam joins."""
    scan, structure, prev = _Scan(), _structure(diag), None
    for y0, strip in strips:
        labels, runs = _label_classes(strip, structure, nodata, scan.n)
        n = sum(count for _, _, count in runs)
        touch = np.zeros(n + 1, bool)
        for edge in (labels[:, 0], labels[:, -1], labels[0] if y0 == 0 else labels[:0],
                     labels[-1] if y0 + len(strip) == height else labels[:0]):
            touch[edge] = True
        scan.runs.append([(c, s + scan.n, k) for c, s, k in runs])
        scan.size.append(np.bincount(labels.ravel(), minlength=n + 1)[1:])
        scan.cls.append(np.repeat([c for c, _, _ in runs], [k for _, _, k in runs]))
        scan.border.append(touch[1:])
        scan.first.append(_first_pixels(labels, n) + y0 * width)
        views = [(labels[:, :-1], labels[:, 1:])]
        views += [(labels[:-1, a], labels[1:, b]) for a, b in _shifts(diag)]
        scan.edges.append(_count_pairs(*_different(views), scan.n - 1, n + 1))
        ids = np.where(labels[0] > 0, labels[0].astype(np.int64) + scan.n, 0)
        if prev is not None:
            _join_seam(scan, prev, (strip[0], ids), diag)
        last = labels[-1].astype(np.int64)
        prev = strip[-1], np.where(last > 0, last + scan.n, 0)
        scan.n += n
    return scan


def _label_classes(strip: np.ndarray, structure: np.ndarray, nodata: int,
                   offset: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Label each class's regions; labels 1.. run on across classes, 0 is nodata."""
    labels, tmp = np.zeros(strip.shape, np.int32), np.empty(strip.shape, np.int32)
    runs, n = [], 0
    for cls in np.flatnonzero(np.bincount(strip.ravel(), minlength=256)):
        if cls == nodata:
            continue
        m = strip == cls
        count = ndimage.label(m, structure, output=tmp)
        np.add(tmp, n, out=labels, where=m)
        runs.append((int(cls), n, count))
        n += count
    if offset + n >= 2**31:
        raise ValueError("more than 2**31 mask regions; sieve a smaller raster")
    return labels, runs


def _shifts(diag: bool) -> list[tuple[slice, slice]]:
    """Column slices pairing each row with its vertical (and diagonal) neighbours below."""
    return [(_ALL, _ALL), (_HEAD, _TAIL), (_TAIL, _HEAD)] if diag else [(_ALL, _ALL)]


def _first_pixels(labels: np.ndarray, n: int) -> np.ndarray:
    """Flat index of each label's first pixel in raster order (labels 1..n)."""
    # a region's first pixel has no same-label pixel to its left or above: test only those
    cand = labels > 0
    cand[:, 1:] &= labels[:, 1:] != labels[:, :-1]
    cand[1:] &= labels[1:] != labels[:-1]
    idx = np.flatnonzero(cand)
    first = np.full(n + 1, _BIG, np.int64)
    np.minimum.at(first, labels.ravel()[idx], idx)
    return first[1:]


def _different(views: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Neighbouring pixel pairs with different, valid labels."""
    masks = [(a != b) & (a > 0) & (b > 0) for a, b in views]
    return (np.concatenate([a[m] for (a, _), m in zip(views, masks, strict=True)]),
            np.concatenate([b[m] for (_, b), m in zip(views, masks, strict=True)]))


def _count_pairs(a: np.ndarray, b: np.ndarray, shift: int,
                 base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unordered pairs (ids < base) with their multiplicity, returned as ids + shift."""
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    keys, counts = np.unique(lo * base + hi, return_counts=True)
    return keys // base + shift, keys % base + shift, counts


def _join_seam(scan: _Scan, prev: tuple[np.ndarray, np.ndarray],
               cur: tuple[np.ndarray, np.ndarray], diag: bool) -> None:
    """Pairs across the seam: same class joins pieces, different classes make edges."""
    (pv, pid), (cv, cid) = prev, cur
    a, b, same = [], [], []
    for sa, sb in _shifts(diag):
        ok = (pid[sa] > 0) & (cid[sb] > 0)
        a.append(pid[sa][ok])
        b.append(cid[sb][ok])
        same.append(pv[sa][ok] == cv[sb][ok])
    a, b, same = np.concatenate(a), np.concatenate(b), np.concatenate(same)
    scan.seams.append(_count_pairs(a[same], b[same], -1, int(b.max(initial=0)) + 1)[:2])
    scan.edges.append(_count_pairs(a[~same], b[~same], -1, int(b.max(initial=0)) + 1))


def _resolve(scan: _Scan, min_px: int, fill_px: int, background: int) -> np.ndarray:
    """Final class per piece: join pieces into regions, then merge small regions."""
    n = scan.n
    su, sv = (_cat([pair[i] for pair in scan.seams], np.int64) for i in range(2))
    graph = coo_matrix((np.ones(len(su), np.int32), (su, sv)), shape=(n, n))  # no duplicates
    k, cc = connected_components(graph, directed=False)
    first = np.full(k, _BIG, np.int64)
    np.minimum.at(first, cc, np.concatenate(scan.first))
    rank = np.empty(k, np.int64)
    rank[np.argsort(first)] = np.arange(k)  # region ids in raster order of their first pixel
    region = rank[cc]
    size = np.bincount(region, np.concatenate(scan.size), minlength=k).astype(np.int64)
    border = np.bincount(region, np.concatenate(scan.border), minlength=k) > 0
    cls = np.zeros(k, np.uint8)
    cls[region] = _cat(scan.cls, np.uint8)
    u, v, w = (_cat([e[i] for e in scan.edges], np.int64) for i in range(3))
    ru, rv = region[u], region[v]
    keys, inverse = np.unique(np.minimum(ru, rv) * k + np.maximum(ru, rv), return_inverse=True)
    weight = np.bincount(inverse, weights=w).astype(np.int64)
    merger = _Merger(size, cls, border, (keys // k, keys % k, weight), min_px, fill_px,
                     background)
    return merger.run()[region]


class _Merger:
    """Smallest-first merging of regions into their largest neighbour (GDAL sieve's rule).

    A merged region joins every neighbour of its new class, so the regions tracked stay the true
    connected regions of the current mask. Only regions that start small can ever be merged away
    (merging only grows regions and keeps the absorber's class), so adjacency is built only for
    them, lazily, from a CSR table.
    """

    def __init__(self, size: np.ndarray, cls: np.ndarray, border: np.ndarray,
                 edges: tuple[np.ndarray, np.ndarray, np.ndarray], min_px: int, fill_px: int,
                 background: int) -> None:
        self.size, self.cls, self.border = size, cls, border
        self.min_px, self.fill_px, self.background = min_px, fill_px, background
        self.parent = np.arange(len(size))
        small = (size < min_px) | ((cls == background) & ~border & (size < fill_px))
        lo, hi, w = edges
        src = np.concatenate([lo[small[lo]], hi[small[hi]]])
        order = np.argsort(src, kind="stable")
        self.dst = np.concatenate([hi[small[lo]], lo[small[hi]]])[order]
        self.w = np.concatenate([w[small[lo]], w[small[hi]]])[order]
        self.ptr = np.searchsorted(src[order], np.arange(len(size) + 1))
        self.adj: dict[int, dict[int, int]] = {}
        self.heap = [(int(size[i]), int(i)) for i in np.flatnonzero(small)]
        heapq.heapify(self.heap)

    def eligible(self, r: int) -> bool:
        s = self.size[r]
        return bool(s < self.min_px or (s < self.fill_px and self.cls[r] == self.background
                                        and not self.border[r]))

    def find(self, r: int) -> int:
        root = r
        while self.parent[root] != root:
            root = int(self.parent[root])
        while self.parent[r] != root:
            self.parent[r], r = root, int(self.parent[r])
        return root

    def raw(self, r: int) -> dict[int, int]:
        """Adjacency of ``r`` as stored (neighbour ids may be stale), popped from the cache."""
        if r in self.adj:
            return self.adj.pop(r)
        a, b = self.ptr[r], self.ptr[r + 1]
        return dict(zip(self.dst[a:b].tolist(), self.w[a:b].tolist(), strict=True))

    def neighbours(self, r: int) -> dict[int, int]:
        """Current neighbour regions of root ``r`` with shared boundary lengths (compacted)."""
        nbrs: dict[int, int] = {}
        for q, w in self.raw(r).items():
            q = self.find(q)
            if q != r:
                nbrs[q] = nbrs.get(q, 0) + w
        self.adj[r] = nbrs
        return nbrs

    def run(self) -> np.ndarray:
        """Merge until no small region has a neighbour; return the final class per region."""
        while self.heap:
            s, r = heapq.heappop(self.heap)
            if self.parent[r] != r or self.size[r] != s:
                continue  # stale entry: merged away or grown since pushed
            nbrs = self.neighbours(r)
            if nbrs:
                size = self.size
                target = max(nbrs, key=lambda q: (size[q], nbrs[q], -q))
                self.merge(r, target, nbrs)
        root = self.parent
        while not np.array_equal(root, root[root]):
            root = root[root]
        return self.cls[root]

    def merge(self, r: int, target: int, nbrs: dict[int, int]) -> None:
        """Give ``r`` the target's class; it now joins every neighbour of that class."""
        cls = self.cls[target]
        group = [r] + [q for q in nbrs if self.cls[q] == cls]
        root, total, border = min(group), 0, False
        for q in group:
            self.parent[q] = root
            total += int(self.size[q])
            border = border or bool(self.border[q])
        self.size[root], self.border[root], self.cls[root] = total, border, cls
        if not self.eligible(root):
            for q in group:
                self.adj.pop(q, None)
        else:  # then every member started small, so its adjacency is complete
            adj = [self.raw(q) for q in group]
            merged = max(adj, key=len)
            for d in adj:
                if d is not merged:
                    for p, w in d.items():
                        merged[p] = merged.get(p, 0) + w
            self.adj[root] = merged
            heapq.heappush(self.heap, (int(self.size[root]), root))
