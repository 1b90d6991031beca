"""Tests for the streaming sieve: exact against a whole-array reference, strip-height independent,
and equal to rasterio's (GDAL's) sieve where the answer is unambiguous."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio.features
from scipy import ndimage

from agriseg.errors import ConfigError
from agriseg.vector.sieve import sieve_strips

ND = 255
SHIFTS = {4: [(0, 1), (1, 0)], 8: [(0, 1), (1, 0), (1, 1), (1, -1)]}


def sieve(mask: np.ndarray, strip_rows: int = 7, **kw) -> np.ndarray:
    reads = []

    def read(y0: int, n: int) -> np.ndarray:
        reads.append((y0, n))
        return mask[y0:y0 + n].copy()

    out = list(sieve_strips(read, *mask.shape, strip_rows=strip_rows, **kw))
    passes = 2 if max(kw.get("min_px", 0), kw.get("fill_px", 0)) > 1 else 1
    assert reads == [(y0, len(s)) for y0, s in out] * passes
    assert [y0 for y0, _ in out] == list(range(0, mask.shape[0], strip_rows))
    assert all(len(s) == min(strip_rows, mask.shape[0] - y0) for y0, s in out)
    return np.concatenate([s for _, s in out])


def regions(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """Label connected regions of every class (nodata excluded) in one array, 1-based."""
    structure = np.ones((3, 3)) if connectivity == 8 else None
    labels, n = np.zeros(mask.shape, np.int64), 0
    for cls in np.unique(mask[mask != ND]):
        lab, k = ndimage.label(mask == cls, structure)
        labels[lab > 0] = lab[lab > 0] + n
        n += k
    return labels, n


def neighbour_counts(labels: np.ndarray, connectivity: int) -> dict[tuple[int, int], int]:
    """Number of adjacent pixel pairs between each pair of different regions."""
    counts: dict[tuple[int, int], int] = {}
    h, w = labels.shape
    for dy, dx in SHIFTS[connectivity]:
        a = labels[:h - dy, max(0, -dx):w - max(0, dx)]
        b = labels[dy:, max(0, dx):w - max(0, -dx) or None]
        m = (a != b) & (a > 0) & (b > 0)
        for p, q in zip(a[m].tolist(), b[m].tolist(), strict=True):
            for key in ((p, q), (q, p)):
                counts[key] = counts.get(key, 0) + 1
    return counts


def reference_sieve(mask: np.ndarray, min_px: int, fill_px: int, connectivity: int) -> np.ndarray:
    """Whole-array rule, one merge at a time: the smallest small region (ties: first pixel)
    takes the class of its largest neighbour (ties: longest boundary, then first pixel)."""
    m = mask.copy()
    while True:
        labels, n = regions(m, connectivity)
        ids = np.arange(1, n + 1)
        size = ndimage.sum_labels(np.ones_like(labels), labels, ids).astype(int)
        first = ndimage.minimum(np.arange(m.size).reshape(m.shape), labels, ids).astype(int)
        cls = m.ravel()[first]
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        nbrs = neighbour_counts(labels, connectivity)
        small = [i for i in range(n) if size[i] < min_px
                 or (cls[i] == 0 and i + 1 not in edge and size[i] < fill_px)]
        for i in sorted(small, key=lambda i: (size[i], first[i])):
            cand = [(q, c) for (p, q), c in nbrs.items() if p == i + 1]
            if cand:
                q, _ = max(cand, key=lambda qc: (size[qc[0] - 1], qc[1], -first[qc[0] - 1]))
                m[labels == i + 1] = cls[q - 1]
                break
        else:
            return m


def make_mask(seed: int, shape: tuple[int, int] = (48, 40)) -> np.ndarray:
    """Smooth blobs of classes 0/1/2, specks of 1/2/0, a U of class 3, nodata areas."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random(shape), 2.0)
    mask = np.digitize(field, np.quantile(field, [0.5, 0.8])).astype(np.uint8)
    specks = rng.random(shape) < 0.04
    mask[specks] = rng.integers(0, 3, specks.sum())
    mask[4:40, 30:32] = 3  # a U spanning many strips, its arms joined only at the bottom
    mask[4:40, 36:38] = 3
    mask[38:40, 30:38] = 3
    mask[20:26, 0:6] = ND
    mask[rng.random(shape) < 0.01] = ND
    return mask


def test_matches_whole_array_reference():
    for seed in range(4):
        mask = make_mask(seed)
        for connectivity in (4, 8):
            for min_px, fill_px in ((5, 0), (0, 12), (4, 9)):
                expected = reference_sieve(mask, min_px, fill_px, connectivity)
                assert not np.array_equal(expected, mask)
                got = sieve(mask, min_px=min_px, fill_px=fill_px, connectivity=connectivity)
                np.testing.assert_array_equal(got, expected, err_msg=f"{seed} {connectivity}")


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize(("min_px", "fill_px"), [(6, 0), (0, 20), (3, 10)])
def test_independent_of_strip_height(connectivity, min_px, fill_px):
    mask = make_mask(7, (150, 120))
    outs = [sieve(mask, strip_rows=rows, min_px=min_px, fill_px=fill_px,
                  connectivity=connectivity) for rows in (1, 7, 64, 150)]
    assert (outs[0] != mask).sum() > 20
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


@pytest.mark.parametrize("connectivity", [4, 8])
def test_no_small_region_left_unless_isolated(connectivity):
    mask = make_mask(3, (120, 100))
    mask[59:62, 49:52] = ND
    mask[60, 50] = 1  # a speck walled in by nodata
    out = sieve(mask, min_px=9, connectivity=connectivity, strip_rows=16)
    assert out[60, 50] == 1
    labels, n = regions(out, connectivity)
    sizes = np.bincount(labels.ravel())
    structure = np.ones((3, 3), bool) if connectivity == 8 else None
    for i in np.flatnonzero(sizes[1:] < 9) + 1:
        region = labels == i
        ring = ndimage.binary_dilation(region, structure) & ~region
        assert (out[ring] == ND).all()
    np.testing.assert_array_equal(out == ND, mask == ND)


def test_speck_hole_and_border_rules():
    mask = np.zeros((60, 50), np.uint8)
    mask[10:50, 10:40] = 1  # crop
    mask[20, 20] = 2  # weed speck inside crop
    mask[30:32, 30:32] = 0  # 4-px hole inside crop
    mask[0:1, 0:2] = 2  # 2-px weed touching the border, inside background
    mask[55:56, 0:2] = 1  # 2-px crop speck touching the border
    mask[52:58, 20:26] = 2  # a large weed region
    mask[40:45, 12:17] = ND
    out = sieve(mask, min_px=3, strip_rows=8)
    assert out[20, 20] == 1 and (out[30:32, 30:32] == 0).all()
    filled = sieve(mask, min_px=3, fill_px=5, strip_rows=8)
    assert (filled[30:32, 30:32] == 1).all()
    assert (sieve(mask, fill_px=5)[0:1, 0:2] == 2).all()  # fill_px leaves classes alone
    for result in (out, filled):
        assert (result[52:58, 20:26] == 2).all()  # large region untouched
        np.testing.assert_array_equal(result == ND, mask == ND)
        assert (result[0:1, 0:2] == 0).all() and (result[55:56, 0:2] == 0).all()


@pytest.mark.parametrize("strip_rows", [1, 2, 4])
def test_ties_prefer_longer_boundary_then_first_pixel(strip_rows):
    mask = np.full((4, 9), 1, np.uint8)
    mask[:, 5:] = 2
    mask[[0, 3], 4] = ND
    mask[1:3, 4] = 3  # 2-px speck between two 16-px regions, 2 edges each: the first wins
    assert (sieve(mask, min_px=3, strip_rows=strip_rows)[1:3, 4] == 1).all()
    mask[2, 5], mask[3, 0] = 3, ND  # now 15 px each, the speck shares 4 edges with class 2
    assert (sieve(mask, min_px=4, strip_rows=strip_rows)[mask == 3] == 2).all()


def test_fill_holes_only_inside():
    mask = np.zeros((30, 30), np.uint8)
    mask[0:12, 0:12] = 1
    mask[5:7, 5:7] = 0  # 4-px hole: filled
    mask[0:2, 5:7] = 0  # 4-px notch touching the raster border: kept
    mask[20:22, 20:22] = 0  # background touching background is one large region: kept
    out = sieve(mask, fill_px=5, strip_rows=4)
    assert (out[5:7, 5:7] == 1).all()
    np.testing.assert_array_equal(out[:5], mask[:5])
    np.testing.assert_array_equal(out[12:], mask[12:])


def test_zero_thresholds_return_input():
    mask = make_mask(1)
    for kw in ({}, {"min_px": 0, "fill_px": 0}, {"min_px": 1, "fill_px": 1}):
        np.testing.assert_array_equal(sieve(mask, **kw), mask)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_equals_rasterio_sieve_on_isolated_specks(connectivity):
    rng = np.random.default_rng(5)
    mask = np.zeros((90, 80), np.uint8)
    mask[:, 40:] = 1
    mask[60:, :] = 2
    for _ in range(30):  # specks of 1..4 px well inside one region, not touching each other
        y, x = rng.integers(2, 28) * 3, rng.integers(1, 26) * 3
        if abs(x - 40) > 3 and abs(y - 60) > 3:
            mask[y:y + rng.integers(1, 3), x:x + rng.integers(1, 3)] = 3 + rng.integers(0, 2)
    expected = rasterio.features.sieve(mask, size=5, connectivity=connectivity)
    assert (expected != mask).sum() > 20
    got = sieve(mask, min_px=5, connectivity=connectivity, strip_rows=11)
    np.testing.assert_array_equal(got, expected)


def test_bad_arguments():
    mask = make_mask(0)
    with pytest.raises(ConfigError, match="connectivity 6"):
        sieve_strips(lambda y, n: mask[y:y + n], 48, 40, min_px=4, connectivity=6)
    with pytest.raises(ConfigError, match="min_px -1"):
        sieve_strips(lambda y, n: mask[y:y + n], 48, 40, min_px=-1)
    with pytest.raises(ValueError, match="expected uint8"):
        list(sieve_strips(lambda y, n: mask[y:y + n].astype(np.int16), 48, 40, min_px=4))
