"""Counter-based randomness for the synthetic field: hashes and value noise of absolute coordinates.

Every random quantity in a generated field is a pure function of (seed, integer coordinates), never
of a stateful generator, so a strip, a tile or a whole field rendered in any order and in any size
gets the same pixels where they overlap. Only IEEE-exact operations (+, -, *, /, sqrt, floor) touch
per-pixel values; angles come from a fixed lookup table, because SIMD and scalar code paths of
transcendental functions may differ in the last bit depending on where an element sits in an array.
"""

from __future__ import annotations

import numpy as np

_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_INV53 = 2.0**-53

ANGLE_STEPS = 4096
"""Angles are quantized to 1/4096 of a turn (0.09 degrees), far below what a pixel can show."""
_TURNS = np.arange(ANGLE_STEPS, dtype=np.float64) / ANGLE_STEPS
COS_LUT = np.cos(2.0 * np.pi * _TURNS)
SIN_LUT = np.sin(2.0 * np.pi * _TURNS)


def _u64(a: np.ndarray | int) -> np.ndarray:
    """Reinterpret integers (negative ones included) as uint64 without overflow errors."""
    return np.asarray(a, dtype=np.int64).view(np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a bijection that spreads every input bit over all output bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


def hash64(seed: int, *keys: np.ndarray | int) -> np.ndarray:
    """Hash a seed and integer coordinate arrays (broadcast together) to uint64 values."""
    with np.errstate(over="ignore"):
        h = _mix(_u64(((seed & _MASK64) ^ 2**63) - 2**63) ^ _GOLDEN)
        for key in keys:
            h = _mix(h ^ (_u64(key) * _GOLDEN))
        return np.atleast_1d(h)


def to_unit(h: np.ndarray) -> np.ndarray:
    """Map uint64 hashes to float64 uniformly in [0, 1) (53 random bits, exact)."""
    return (h >> np.uint64(11)).astype(np.float64) * _INV53


def draws(h: np.ndarray, n: int) -> np.ndarray:
    """``n`` independent uniforms in [0, 1) per hash; the result has shape ``h.shape + (n,)``."""
    salt = np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN
    with np.errstate(over="ignore"):
        return to_unit(_mix(h[..., None] ^ salt))


def angle_index(turns: np.ndarray) -> np.ndarray:
    """Index into COS_LUT/SIN_LUT for an angle given in turns (any real number)."""
    return np.floor(turns * ANGLE_STEPS).astype(np.int64) % ANGLE_STEPS


def pixel_hash32(col0: int, ncols: int, row0: int, nrows: int, seed: int) -> np.ndarray:
    """A uint32 hash per pixel of the window, a function of absolute (row, col, seed) only.

    uint32 arithmetic keeps this cheap enough to run on every pixel of a 16k x 16k raster.
    """
    s = int(hash64(seed, 0x5EED)[0]) & 0xFFFFFFFF
    cols = (np.arange(col0, col0 + ncols, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32)
    rows = (np.arange(row0, row0 + nrows, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32)
    hx = _lowbias32(cols * np.uint32(0x9E3779B1) ^ np.uint32(s))
    hy = _lowbias32(rows * np.uint32(0x85EBCA77) + np.uint32(s))
    return _lowbias32(hy[:, None] ^ hx[None, :])


def _lowbias32(h: np.ndarray) -> np.ndarray:
    """Chris Wellons' lowbias32 integer hash finalizer (good avalanche, three multiplies)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x7FEB352D)
    h = h ^ (h >> np.uint32(15))
    h = h * np.uint32(0x846CA68B)
    return h ^ (h >> np.uint32(16))


def byte_noise(h: np.ndarray, byte: int) -> np.ndarray:
    """Uniform float32 noise in [-0.5, 0.5] from one byte (0..3) of a uint32 pixel hash."""
    b = (h >> np.uint32(8 * byte)) & np.uint32(0xFF)
    return b.astype(np.float32) * np.float32(1.0 / 255.0) - np.float32(0.5)


def value_noise_grid(col0: int, ncols: int, row0: int, nrows: int, cell_px: float,
                     seed: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] over a pixel window, lattice spacing ``cell_px`` pixels.

    Interpolation is separable (first along x on the few lattice rows, then along y), which
    costs three operations per pixel; each output value depends only on its absolute pixel
    position, so windows stitch without seams.
    """
    ix, wx = _lattice(col0, ncols, cell_px)
    iy, wy = _lattice(row0, nrows, cell_px)
    lx = np.arange(ix[0], ix[-1] + 2)
    ly = np.arange(iy[0], iy[-1] + 2)
    g = (to_unit(hash64(seed, ly[:, None], lx[None, :])) * 2.0 - 1.0).astype(np.float32)
    gx0 = g[:, ix - ix[0]]
    gx = gx0 + (g[:, ix - ix[0] + 1] - gx0) * wx  # (lattice rows, ncols)
    top = gx[iy - iy[0]]
    return top + (gx[iy - iy[0] + 1] - top) * wy[:, None]


def _lattice(start: int, n: int, cell_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Lattice cell index and smoothstep weight (float32) of each pixel centre along one axis."""
    t = (np.arange(start, start + n, dtype=np.float64) + 0.5) / cell_px
    i = np.floor(t)
    f = t - i
    return i.astype(np.int64), (f * f * (3.0 - 2.0 * f)).astype(np.float32)


def value_noise_points(x: np.ndarray, y: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth value noise in [0, 1] at scattered points (float64 coordinates, same unit as cell)."""
    tx, ty = x / cell, y / cell
    ix, iy = np.floor(tx), np.floor(ty)
    fx, fy = tx - ix, ty - iy
    fx, fy = fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy)
    ix, iy = ix.astype(np.int64), iy.astype(np.int64)
    v00 = to_unit(hash64(seed, iy, ix))
    v01 = to_unit(hash64(seed, iy, ix + 1))
    v10 = to_unit(hash64(seed, iy + 1, ix))
    v11 = to_unit(hash64(seed, iy + 1, ix + 1))
    top = v00 + (v01 - v00) * fx
    bottom = v10 + (v11 - v10) * fx
    return top + (bottom - top) * fy
