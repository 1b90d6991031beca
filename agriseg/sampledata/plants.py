"""Where the plants of a synthetic field are, and what each leaf looks like.

The field is planted on an infinite lattice: crop plant ``j`` of row ``k`` and weed candidate
``q`` of grid cell ``(i, j)`` each draw their traits from a hash of their own indices and the seed.
Asking for the plants of any window therefore returns exactly the plants that a larger window
would contain there, which is what lets the renderer work strip by strip without seams and
makes a tile identical to the matching part of a larger field. Sizes are in metres; positions are
returned in pixel units (pixel ``(col, row)`` has its centre at ``(col + 0.5, row + 0.5)``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from agriseg.errors import ConfigError
from agriseg.sampledata.noise import COS_LUT, SIN_LUT, angle_index, draws, hash64
from agriseg.sampledata.noise import value_noise_points as _patchiness

MAX_LEAVES = 10
CROP, WEED = 1, 2
_WEED_CELL_M = 0.25
# Reflectance (red, green, blue, nir) of each plant type; weeds are yellower or bluer than the
# crop on average, but the per-plant spread makes the greens overlap.
_CROP_REFL = (0.045, 0.12, 0.035, 0.48)
_ROSETTE_REFL = (0.075, 0.16, 0.045, 0.43)
_REDDISH_REFL = (0.10, 0.11, 0.055, 0.38)
_GRASS_REFL = (0.05, 0.10, 0.05, 0.40)


@dataclass(frozen=True)
class FieldLayout:
    """How the field is planted (all lengths in metres, angles in degrees).

    ``row_angle_deg`` is the angle of the crop rows from the raster's vertical axis, clockwise.
    ``weeds_per_m2`` is the mean weed density; weeds come in patches, and
    ``weed_in_row_fraction`` of them grow inside the crop rows, the rest between rows.
    """

    row_spacing_m: float = 0.45
    row_angle_deg: float = 4.0
    plant_spacing_m: float = 0.25
    crop_radius_m: float = 0.1
    missing_plant_fraction: float = 0.06
    weeds_per_m2: float = 10.0
    weed_in_row_fraction: float = 0.2

    def __post_init__(self) -> None:
        for name in ("row_spacing_m", "plant_spacing_m", "crop_radius_m"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"FieldLayout.{name}={value!r} must be a positive number")
        for name in ("missing_plant_fraction", "weed_in_row_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"FieldLayout.{name}={value!r} must be between 0 and 1")
        if not 0.0 <= self.weeds_per_m2 <= 400.0:
            raise ConfigError(f"FieldLayout.weeds_per_m2={self.weeds_per_m2!r} must be in 0..400")
        if self.crop_radius_m * 2.0 >= self.row_spacing_m:
            raise ConfigError(f"FieldLayout.crop_radius_m={self.crop_radius_m} is too large for "
                              f"row_spacing_m={self.row_spacing_m}; use < row_spacing_m / 2")

    @property
    def max_radius_m(self) -> float:
        """Largest distance any leaf reaches from its plant's centre."""
        return max(self.crop_radius_m * 1.4, 0.14)


@dataclass
class Plants:
    """Plants of one window: per-plant traits (N,) and leaf ellipses (N, MAX_LEAVES), in pixels."""

    cls: np.ndarray      # uint8 class id (CROP or WEED)
    z: np.ndarray        # int64 stacking height, 20 bits; higher plants cover lower ones
    refl: np.ndarray     # float32 (N, 4) red, green, blue, nir reflectance
    midrib: np.ndarray   # float32 brightness of the leaf midrib (0 for grasses)
    lx: np.ndarray       # leaf centre x (pixels)
    ly: np.ndarray       # leaf centre y (pixels)
    cos: np.ndarray      # leaf axis direction
    sin: np.ndarray
    a: np.ndarray        # leaf semi-axes (pixels): a along the leaf, b across
    b: np.ndarray
    bright: np.ndarray   # float32 per-leaf brightness factor
    active: np.ndarray   # bool: the plant has this leaf


def _rotation(layout: FieldLayout) -> tuple[float, float]:
    rad = math.radians(layout.row_angle_deg)
    return math.sin(rad), math.cos(rad)


def row_offset(layout: FieldLayout, seed: int) -> float:
    """Across-row position (metres) of crop row 0; the seed shifts the rows sideways."""
    return float(draws(hash64(seed, 0xA0), 1)[0, 0]) * layout.row_spacing_m


def plants_in_box(layout: FieldLayout, seed: int, pixel_size_m: float,
                  box_px: tuple[float, float, float, float]) -> Plants:
    """All plants whose leaves may reach into ``box_px`` = (x0, y0, x1, y1) in pixel units."""
    box_m = tuple(v * pixel_size_m for v in box_px)
    m = layout.max_radius_m
    grown = (box_m[0] - m, box_m[1] - m, box_m[2] + m, box_m[3] + m)
    crop = _crops(layout, seed, grown)
    weeds = _weeds(layout, seed, grown)
    parts = [p for p in (crop, weeds) if p is not None]
    fields = {f.name: np.concatenate([getattr(p, f.name) for p in parts])
              for f in dataclasses.fields(Plants)}
    for name in ("lx", "ly", "a", "b"):
        fields[name] = fields[name] / pixel_size_m
    return Plants(**fields)


def _crops(layout: FieldLayout, seed: int, box: tuple[float, ...]) -> Plants:
    """Crop plants on straight rows, regularly spaced with jitter and a few gaps."""
    sin_t, cos_t = _rotation(layout)
    xs, ys = np.array([box[0], box[2], box[0], box[2]]), np.array([box[1], box[1], box[3], box[3]])
    along, across = xs * sin_t + ys * cos_t, xs * cos_t - ys * sin_t
    rs, ps, off = layout.row_spacing_m, layout.plant_spacing_m, row_offset(layout, seed)
    k = np.arange(math.floor((across.min() - off) / rs) - 1,
                  math.ceil((across.max() - off) / rs) + 2)
    j = np.arange(math.floor(along.min() / ps) - 2, math.ceil(along.max() / ps) + 2)
    k, j = np.meshgrid(k, j, indexing="ij")
    k, j = k.ravel(), j.ravel()
    u = draws(hash64(seed, 0xC0, k, j), 9)
    phase = draws(hash64(seed, 0xC1, k), 1)[:, 0] * ps
    s = j * ps + phase + (u[:, 1] - 0.5) * 0.3 * ps
    d = k * rs + off + (u[:, 2] - 0.5) * 0.06 * rs
    x, y = s * sin_t + d * cos_t, s * cos_t - d * sin_t
    radius = layout.crop_radius_m * (0.6 + 0.75 * u[:, 3])
    keep = ((u[:, 0] >= layout.missing_plant_fraction) & (x >= box[0]) & (x <= box[2])
            & (y >= box[1]) & (y <= box[3]))
    x, y, radius, u = x[keep], y[keep], radius[keep], u[keep]
    h = hash64(seed, 0xC2, k[keep], j[keep])
    n = x.size
    n_outer = 6 + np.floor(u[:, 4] * 3).astype(np.int64)  # 6..8 outer leaves, 2 inner ones
    v = draws(h, 3 * MAX_LEAVES).reshape(n, MAX_LEAVES, 3)
    slot = np.arange(MAX_LEAVES)
    inner = slot >= 8
    turns = np.where(inner, (slot - 8) / 2.0 + 0.5 / n_outer[:, None],
                     slot / n_outer[:, None]) + u[:, 5:6] + (v[..., 0] - 0.5) * 0.08
    a = radius[:, None] * np.where(inner, 0.34, 0.52) * (0.85 + 0.3 * v[..., 1])
    b = a * np.where(inner, 0.8, 0.6 + 0.15 * v[..., 2])
    reach = np.where(inner, 0.5 * a, radius[:, None] - a)
    bright = (0.9 + 0.2 * v[..., 2]) * np.where(inner, 1.1, 1.0)
    active = inner | (slot < n_outer[:, None])
    refl = np.asarray(_CROP_REFL) * _tint(u[:, 6], u[:, 7])
    return _assemble(CROP, x, y, turns, a, b, reach, bright, active, refl,
                     z=0.35 + 0.65 * u[:, 8], midrib=np.full(n, 0.18))


def _tint(bright: np.ndarray, hue: np.ndarray) -> np.ndarray:
    """Per-plant multiplicative colour variation (N, 4): brightness and a red/green shift."""
    scale = 0.82 + 0.36 * bright
    shift = hue - 0.5
    return scale[:, None] * np.stack([1.0 + 0.35 * shift, 1.0 - 0.12 * shift,
                                      1.0 + 0.1 * shift, 1.0 + 0.1 * (bright - 0.5)], axis=1)


def _weeds(layout: FieldLayout, seed: int, box: tuple[float, ...]) -> Plants | None:
    """Weeds in patches, mostly between the rows: broadleaf rosettes and grass tufts."""
    density, f_in = layout.weeds_per_m2, layout.weed_in_row_fraction
    if density <= 0:
        return None
    c = _WEED_CELL_M
    half_band = min(layout.crop_radius_m * 0.9, layout.row_spacing_m * 0.45)
    q = 2.0 * half_band / layout.row_spacing_m  # share of the ground inside the crop bands
    cand = density * max(f_in / q, (1.0 - f_in) / (1.0 - q))  # candidates per m2
    per_cell = max(1, math.ceil(cand * c * c * 1.8))
    ci = np.arange(math.floor(box[0] / c), math.floor(box[2] / c) + 1)
    cj = np.arange(math.floor(box[1] / c), math.floor(box[3] / c) + 1)
    cj, ci, cq = (g.ravel() for g in np.meshgrid(cj, ci, np.arange(per_cell), indexing="ij"))
    u = draws(hash64(seed, 0xD0, cj, ci, cq), 11)
    x, y = (ci + u[:, 0]) * c, (cj + u[:, 1]) * c
    sin_t, cos_t = _rotation(layout)
    across = (x * cos_t - y * sin_t - row_offset(layout, seed)) / layout.row_spacing_m
    to_row = 0.5 - np.abs(across - np.floor(across) - 0.5)  # distance to the nearest row centre
    in_band = to_row * layout.row_spacing_m < half_band
    region = np.where(in_band, f_in / q, (1.0 - f_in) / (1.0 - q)) * density / cand
    patches = 0.2 + 1.6 * _patchiness(x, y, 1.5, seed + 0xD1)
    keep = ((u[:, 2] < region * patches * cand * c * c / per_cell)
            & (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3]))
    x, y, u = x[keep], y[keep], u[keep]
    h = hash64(seed, 0xD2, cj[keep], ci[keep], cq[keep])
    return _weed_shapes(x, y, u, draws(h, 3 * MAX_LEAVES).reshape(x.size, MAX_LEAVES, 3))


def _weed_shapes(x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> Plants:
    """Leaves of each weed: round-leaved rosettes (60%) or thin grass blades (40%)."""
    grass = (u[:, 3] < 0.4)[:, None]
    slot = np.arange(MAX_LEAVES)
    n_leaves = np.where(grass[:, 0], 3 + np.floor(u[:, 4] * 5), 4 + np.floor(u[:, 4] * 3))
    radius = 0.025 + 0.045 * u[:, 5] ** 1.5
    a_rosette = radius[:, None] * 0.5 * (0.85 + 0.3 * v[..., 1])
    a_grass = (0.02 + 0.035 * u[:, 5:6]) * (0.7 + 0.6 * v[..., 1])
    a = np.where(grass, a_grass, a_rosette)
    b = a * np.where(grass, 0.1 + 0.06 * v[..., 2], 0.65 + 0.2 * v[..., 2])
    reach = np.where(grass, 0.9 * a, radius[:, None] - a)
    turns = np.where(grass, v[..., 0],
                     slot / n_leaves[:, None] + u[:, 6:7] + (v[..., 0] - 0.5) * 0.1)
    bright = 0.88 + 0.24 * v[..., 2]
    active = slot < n_leaves[:, None]
    reddish = u[:, 7] < 0.3
    base = np.where(grass, np.asarray(_GRASS_REFL),
                    np.where(reddish[:, None], _REDDISH_REFL, _ROSETTE_REFL))
    refl = base * _tint(u[:, 8], u[:, 9])
    midrib = np.where(grass[:, 0], 0.0, 0.08)
    return _assemble(WEED, x, y, turns, a, b, reach, bright, active, refl,
                     z=0.6 * u[:, 10], midrib=midrib)


def _assemble(cls: int, x: np.ndarray, y: np.ndarray, turns: np.ndarray, a: np.ndarray,
              b: np.ndarray, reach: np.ndarray, bright: np.ndarray, active: np.ndarray,
              refl: np.ndarray, z: np.ndarray, midrib: np.ndarray) -> Plants:
    """Place each leaf ellipse at ``reach`` metres from its plant centre along its own axis."""
    idx = angle_index(turns)
    cos, sin = COS_LUT[idx], SIN_LUT[idx]
    return Plants(
        cls=np.full(x.size, cls, dtype=np.uint8),
        z=np.floor(np.clip(z, 0.0, 1.0) * ((1 << 20) - 1)).astype(np.int64),
        refl=refl.astype(np.float32), midrib=np.asarray(midrib, dtype=np.float32),
        lx=x[:, None] + reach * cos, ly=y[:, None] + reach * sin, cos=cos, sin=sin,
        a=a, b=b, bright=bright.astype(np.float32), active=active)
