"""Render one window of a synthetic field: soil, plants, shadows, nodata, and exact labels.

A window's pixels depend only on their absolute position and the scene, never on where the
window starts or how large it is, so any split into strips or chunks gives the same raster.
Plants are drawn as unions of leaf ellipses; where leaves overlap, the highest one wins through
a single ``np.maximum.at`` over packed (height, plant, leaf) keys, which is independent of
drawing order and needs no per-plant Python loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from agriseg.constants import NODATA
from agriseg.sampledata.noise import (
    byte_noise,
    hash64,
    pixel_hash32,
    value_noise_grid,
    value_noise_points,
)
from agriseg.sampledata.plants import (
    MAX_LEAVES,
    FieldLayout,
    Plants,
    plants_in_box,
    row_offset,
)

_SOIL_REFL = (0.14, 0.09, 0.055, 0.25)      # red, green, blue, nir of dry tilled soil
_STONE_REFL = (0.20, 0.19, 0.17, 0.24)
_MOIST_AMP = (1.0, 1.05, 1.12, 0.8)          # wet soil darkens blue most, nir least
_SHADE_WEIGHT = (1.0, 1.0, 1.0, 0.55)        # leaf shading matters less in nir (scattering)
_PID_BITS, _LEAF_BITS = 38, 4
_STAMP_ELEMENTS = 1 << 19                    # bounds the memory of one batch of leaf stamps


@dataclass(frozen=True)
class Scene:
    """Everything that decides the pixels of a field (but not how it is stored)."""

    width: int
    height: int
    pixel_size_m: float
    seed: int
    layout: FieldLayout = field(default_factory=FieldLayout)
    nodata_fraction: float = 0.0


def render_window(scene: Scene, row0: int, nrows: int, col0: int = 0,
                  ncols: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance (4, nrows, ncols) float32 in red, green, blue, nir order, and labels.

    Labels are uint8: 0 soil, 1 crop, 2 weed, 255 nodata; reflectance is meaningless (but
    finite) where the label is 255. ``ncols`` defaults to the rest of the row.
    """
    px = scene.pixel_size_m
    ncols = scene.width - col0 if ncols is None else ncols
    short, long_ = round(0.012 / px), round(0.025 / px)  # shadow offsets (sun in the north-west)
    m = max(short, long_)
    plants = plants_in_box(scene.layout, scene.seed, px,
                           (col0 - m, row0 - m, col0 + ncols, row0 + nrows))
    keys = stamp_leaves(plants, row0 - m, nrows + m, col0 - m, ncols + m)
    top = keys[m:, m:]
    refl = soil(scene, row0, nrows, col0, ncols)
    cast = np.zeros(top.shape, dtype=np.float32)
    for off in (short, long_):
        if off > 0:
            cast += keys[m - off:m - off + nrows, m - off:m - off + ncols] >= 0
    refl *= 1.0 - np.float32(0.22) * cast
    labels = np.zeros((nrows, ncols), dtype=np.uint8)
    rr, cc = np.nonzero(top >= 0)
    if rr.size:
        pid = (top[rr, cc] >> _LEAF_BITS) & ((1 << _PID_BITS) - 1)
        leaf = pid * MAX_LEAVES + (top[rr, cc] & ((1 << _LEAF_BITS) - 1))
        labels[rr, cc] = plants.cls[pid]
        refl[:, rr, cc] = _leaf_colour(plants, pid, leaf, cc + (col0 + 0.5), rr + (row0 + 0.5))
    _grain(refl, pixel_hash32(col0, ncols, row0, nrows, scene.seed))
    nodata = nodata_mask(scene, row0, nrows, col0, ncols)
    if nodata is not None:
        labels[nodata] = NODATA
    return refl, labels


def stamp_leaves(plants: Plants, row0: int, nrows: int, col0: int, ncols: int) -> np.ndarray:
    """Key of the topmost leaf covering each pixel centre of the window (-1: bare soil).

    Keys pack (plant height, plant index, leaf index), so their maximum is the visible leaf.
    Leaves are grouped by bounding-box size so each group is one vectorized stamp computation.
    """
    keys = np.full(nrows * ncols, -1, dtype=np.int64)
    flat = np.flatnonzero(plants.active.ravel())
    pid = flat // MAX_LEAVES
    lx, ly = plants.lx.ravel()[flat], plants.ly.ravel()[flat]
    a, b = plants.a.ravel()[flat], plants.b.ravel()[flat]
    cos, sin = plants.cos.ravel()[flat], plants.sin.ravel()[flat]
    half = np.sqrt(np.maximum(a * a * cos * cos + b * b * sin * sin,
                              a * a * sin * sin + b * b * cos * cos))
    hit = ((ly + half >= row0) & (ly - half <= row0 + nrows)
           & (lx + half >= col0) & (lx - half <= col0 + ncols))
    size = np.ceil(half).astype(np.int64)
    key = (plants.z[pid] << (_PID_BITS + _LEAF_BITS)) | (pid << _LEAF_BITS) | (flat % MAX_LEAVES)
    for s in np.unique(size[hit]):
        sel = np.flatnonzero(hit & (size == s))
        step = max(1, _STAMP_ELEMENTS // (2 * s + 2) ** 2)
        for i in range(0, sel.size, step):
            j = sel[i:i + step]
            _stamp(keys, int(s), lx[j], ly[j], a[j], b[j], cos[j], sin[j], key[j],
                   (row0, nrows, col0, ncols))
    return keys.reshape(nrows, ncols)


def _stamp(keys: np.ndarray, s: int, lx: np.ndarray, ly: np.ndarray, a: np.ndarray,
           b: np.ndarray, cos: np.ndarray, sin: np.ndarray, key: np.ndarray,
           window: tuple[int, int, int, int]) -> None:
    """Rasterize ellipses whose boxes fit (2s+2)^2 pixels and keep the max key per pixel."""
    row0, nrows, col0, ncols = window
    ix0 = np.floor(lx).astype(np.int64) - s
    iy0 = np.floor(ly).astype(np.int64) - s
    grid = np.arange(2 * s + 2, dtype=np.float32) + np.float32(0.5)
    dx = grid[None, None, :] - (lx - ix0).astype(np.float32)[:, None, None]
    dy = grid[None, :, None] - (ly - iy0).astype(np.float32)[:, None, None]
    ca, sa = (cos / a).astype(np.float32), (sin / a).astype(np.float32)
    cb, sb = (cos / b).astype(np.float32), (sin / b).astype(np.float32)
    u = dx * ca[:, None, None] + dy * sa[:, None, None]
    v = dy * cb[:, None, None] - dx * sb[:, None, None]
    inside = u * u + v * v < np.float32(1.0)
    rows = iy0[:, None] + np.arange(2 * s + 2) - row0
    cols = ix0[:, None] + np.arange(2 * s + 2) - col0
    inside &= ((rows >= 0) & (rows < nrows))[:, :, None]
    inside &= ((cols >= 0) & (cols < ncols))[:, None, :]
    n, r, c = np.nonzero(inside)
    np.maximum.at(keys, rows[n, r] * ncols + cols[n, c], key[n])


def _leaf_colour(plants: Plants, pid: np.ndarray, leaf: np.ndarray, x: np.ndarray,
                 y: np.ndarray) -> np.ndarray:
    """Reflectance (4, n) of leaf pixels: lighter leaf centres and midribs, darker bases."""
    dx, dy = x - plants.lx.ravel()[leaf], y - plants.ly.ravel()[leaf]
    cos, sin = plants.cos.ravel()[leaf], plants.sin.ravel()[leaf]
    u = (dx * cos + dy * sin) / plants.a.ravel()[leaf]
    v = (dy * cos - dx * sin) / plants.b.ravel()[leaf]
    r2 = np.minimum(u * u + v * v, 1.0)
    shade = (0.78 + 0.3 * (1.0 - r2)) * (0.9 + 0.1 * u)
    shade += plants.midrib[pid] * np.clip(1.0 - 5.0 * np.abs(v), 0.0, 1.0) * (1.0 - u * u)
    shade = (shade * plants.bright.ravel()[leaf] - 1.0).astype(np.float32)
    weight = np.asarray(_SHADE_WEIGHT, dtype=np.float32)[:, None]
    return plants.refl[pid].T * (1.0 + weight * shade[None, :])


def soil(scene: Scene, row0: int, nrows: int, col0: int, ncols: int) -> np.ndarray:
    """Bare soil reflectance (4, nrows, ncols): moisture patches, tilled ridges, clods, stones."""
    px, seed = scene.pixel_size_m, scene.seed

    def octave(cell_m: float, salt: int) -> np.ndarray:
        return value_noise_grid(col0, ncols, row0, nrows, max(cell_m / px, 1.5), seed * 31 + salt)

    layout = scene.layout
    rad = math.radians(layout.row_angle_deg)
    x = (np.arange(col0, col0 + ncols) + 0.5) * px * math.cos(rad)
    y = (np.arange(row0, row0 + nrows) + 0.5) * px * math.sin(rad)
    off = row_offset(layout, seed)
    t = ((x[None, :] - y[:, None] - off) / layout.row_spacing_m).astype(np.float32)
    ridge = np.abs(t - np.floor(t) - np.float32(0.5))  # 0.5 on the crop rows, 0 between
    moist = 0.14 * octave(3.0, 1) + 0.07 * octave(0.5, 2) + 0.1 * (ridge - np.float32(0.25))
    clods = octave(0.037, 3) + np.float32(0.6) * octave(0.013, 6)
    clods = np.clip((clods - np.float32(0.35)) * np.float32(2.0), 0.0, 1.0)
    stones = np.clip((octave(0.03, 4) - np.float32(0.8)) * np.float32(8.0), 0.0, 1.0)
    lum = (1.0 + np.float32(0.07) * octave(0.012, 5)) * (1.0 - np.float32(0.25) * clods)
    out = np.empty((4, nrows, ncols), dtype=np.float32)
    for i in range(4):
        band = np.float32(_SOIL_REFL[i]) * (1.0 + np.float32(_MOIST_AMP[i]) * moist) * lum
        out[i] = band + (np.float32(_STONE_REFL[i]) - band) * stones
    return out


def _grain(refl: np.ndarray, h: np.ndarray) -> None:
    """Per-pixel sensor and texture noise: shared luminance grain plus a little colour noise."""
    lum = np.float32(1.0) + np.float32(0.08) * byte_noise(h, 0)
    for i in range(refl.shape[0]):
        refl[i] *= lum + np.float32(0.03) * byte_noise(h, 1 + i % 3)


def nodata_mask(scene: Scene, row0: int, nrows: int, col0: int,
                ncols: int) -> np.ndarray | None:
    """True where the flight did not cover: an irregular cut across one corner, or None.

    The cut is the line ``a + b = t`` in coordinates measured from the corner (0..1 each way),
    with ``t`` chosen so the triangle holds ``nodata_fraction`` of the image, wobbled along its
    length by 1-D value noise so it looks like a ragged orthomosaic edge.
    """
    f = scene.nodata_fraction
    if f <= 0.0:
        return None
    corner = int(hash64(scene.seed, 0xE0)[0] % np.uint64(4))
    a = (np.arange(col0, col0 + ncols) + 0.5) / scene.width
    b = (np.arange(row0, row0 + nrows) + 0.5) / scene.height
    a = 1.0 - a if corner in (1, 2) else a
    b = 1.0 - b if corner in (2, 3) else b
    t = math.sqrt(2.0 * f) if f <= 0.5 else 2.0 - math.sqrt(2.0 * (1.0 - f))
    along = np.linspace(-1.0, 1.0, 4097)
    zero = np.zeros_like(along)
    wobble = (0.12 * (value_noise_points(along, zero, 0.3, scene.seed + 0xE1) - 0.5)
              + 0.04 * (value_noise_points(along, zero, 0.03, scene.seed + 0xE2) - 0.5))
    idx = np.rint((a[None, :] - b[:, None] + 1.0) * 2048.0).astype(np.int64)
    return a[None, :] + b[:, None] < t + wobble[idx] * min(t, 2.0 - t)
