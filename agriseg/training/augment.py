"""Training augmentation for top-down imagery: dihedral flips, photometric jitter, scale jitter.

Drone imagery has no "up", so all 8 flips/rotations of the square (the dihedral group D4) are
equally valid views of a field. Geometric transforms are applied to the image and its label
together (bilinear for the image, nearest for the class ids, sampled at the same pixel
centres); photometric ones touch the image only. Every random draw comes from the ``rng``
passed in, so a window's augmentation is reproducible from its seed.

The image arrives already normalized (``(value - mean) / std``), so photometric jitter works in
those units: brightness is an additive shift, contrast a scale around each band's mean, and
gamma a monotonic power curve applied to a min-max rescaled copy of each band and mapped back
to the band's original range (a power curve on zero-centred data would flip signs or produce
NaNs; on ``[0, 1]`` it is well defined and keeps the band's minimum and maximum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from agriseg.constants import NODATA
from agriseg.errors import ConfigError

IMAGE_PAD = 0.0  # image value of padded pixels: the band mean after normalization


def dihedral(array: np.ndarray, k: int) -> np.ndarray:
    """Element ``k`` (0..7) of the dihedral group on the last two axes.

    ``k % 4`` quarter turns counter-clockwise, then a left-right flip when ``k >= 4``;
    ``k = 0`` is the identity. Works for ``(H, W)`` labels and ``(C, H, W)`` images alike.
    """
    if not 0 <= k < 8:
        raise ValueError(f"dihedral transform index must be 0..7, got {k}")
    out = np.rot90(array, k % 4, axes=(-2, -1))
    if k >= 4:
        out = out[..., ::-1]
    return np.ascontiguousarray(out)


def _resample_axis(size: int, zoomed: int, offset: int) -> tuple[np.ndarray, ...]:
    """Source coordinates along one axis for an output of ``size`` pixels.

    The source (``size`` px) is zoomed to ``zoomed`` px and output pixel ``i`` is zoomed pixel
    ``i + offset``. Returns ``(lo, hi, w, nearest, inside)``: the two bilinear neighbours and
    the weight of ``hi``, the nearest source pixel, and whether the pixel lies in the zoomed
    image at all (outside it is padding). Both samplers use the same pixel-centre mapping, so
    image and label stay aligned.
    """
    z = np.arange(size) + offset
    inside = (z >= 0) & (z < zoomed)
    centre = (z + 0.5) * (size / zoomed)  # zoomed pixel centre in source pixel units
    nearest = np.clip(np.floor(centre).astype(np.int64), 0, size - 1)
    pos = np.clip(centre - 0.5, 0.0, size - 1.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, size - 1)
    return lo, hi, (pos - lo).astype(np.float32), nearest, inside


def zoom(image: np.ndarray, label: np.ndarray, factor: float, offset: tuple[int, int]
         ) -> tuple[np.ndarray, np.ndarray]:
    """Zoom by ``factor`` (> 1 in, < 1 out) keeping the size: crop, or pad with 0 / 255.

    ``offset`` is the (row, column) of the zoomed image's pixel that lands at the output's top
    left; negative when zooming out (the zoomed image then sits inside padding).
    """
    _, h, w = image.shape
    zh, zw = max(1, round(h * factor)), max(1, round(w * factor))
    ylo, yhi, wy, yn, yin = _resample_axis(h, zh, offset[0])
    xlo, xhi, wx, xn, xin = _resample_axis(w, zw, offset[1])
    rows = image[:, ylo] * (1 - wy)[:, None] + image[:, yhi] * wy[:, None]
    out = rows[:, :, xlo] * (1 - wx) + rows[:, :, xhi] * wx
    lab = label[yn][:, xn]
    inside = yin[:, None] & xin[None, :]
    if not inside.all():
        out[:, ~inside] = IMAGE_PAD
        lab = lab.copy()
        lab[~inside] = NODATA
    return out.astype(np.float32, copy=False), lab


@dataclass
class Augment:
    """Random augmentation of an ``(image, label)`` pair; call it with a numpy ``Generator``.

    ``flips`` picks one of the 8 dihedral transforms; ``brightness`` is the largest additive
    shift (normalized units), ``contrast`` and ``gamma`` the largest relative change of the
    contrast scale and the gamma exponent; ``scale`` >= 1 zooms by a factor drawn log-uniformly
    from ``[1/scale, scale]``. A value of 0 (or ``scale=1``) turns that transform off.
    """

    flips: bool = True
    brightness: float = 0.1
    contrast: float = 0.1
    gamma: float = 0.1
    scale: float = 1.25

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "gamma"):
            value = getattr(self, name)
            if not 0 <= value < (math.inf if name == "brightness" else 1):
                allowed = ">= 0" if name == "brightness" else "in [0, 1)"
                raise ConfigError(f"augment.{name} = {value} must be {allowed}")
        if not self.scale >= 1:
            raise ConfigError(f"augment.scale = {self.scale} must be >= 1 (1 = no zoom); "
                              f"zoom factors are drawn from [1/scale, scale]")

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> Augment:
        """Build from a config mapping; unknown keys are an error naming the valid ones."""
        config = dict(config or {})
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(config) - set(names))
        if unknown:
            raise ConfigError(f"unknown augment option(s) {', '.join(unknown)}; valid options: "
                              f"{', '.join(names)}")
        try:
            kw = {k: bool(v) if k == "flips" else float(v) for k, v in config.items()}
        except (TypeError, ValueError) as e:
            raise ConfigError(f"augment options must be numbers (flips: true/false): {e}") \
                from None
        return cls(**kw)

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Augmented copies of ``image`` (C, H, W) float32 and ``label`` (H, W)."""
        if image.shape[-2:] != label.shape:
            raise ValueError(f"image {image.shape} and label {label.shape} sizes differ")
        image = self.photometric(np.asarray(image, dtype=np.float32), rng)
        if self.scale > 1:
            image, label = self.scale_jitter(image, label, rng)
        if self.flips:
            k = int(rng.integers(8))
            image, label = dihedral(image, k), dihedral(label, k)
        return image, label

    def photometric(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Brightness, contrast and gamma jitter (a new array; the input is not modified)."""
        out = image.copy()
        if self.gamma:
            g = float(rng.uniform(1 - self.gamma, 1 + self.gamma))
            lo = out.min(axis=(-2, -1), keepdims=True)
            span = out.max(axis=(-2, -1), keepdims=True) - lo
            safe = np.where(span > 0, span, 1)
            out = lo + span * np.power((out - lo) / safe, g)
        if self.contrast:
            c = float(rng.uniform(1 - self.contrast, 1 + self.contrast))
            mean = out.mean(axis=(-2, -1), keepdims=True)
            out = (out - mean) * c + mean
        if self.brightness:
            out = out + float(rng.uniform(-self.brightness, self.brightness))
        return out.astype(np.float32, copy=False)

    def scale_jitter(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Zoom by a log-uniform factor in ``[1/scale, scale]`` at a random position."""
        factor = math.exp(rng.uniform(-math.log(self.scale), math.log(self.scale)))
        offset = []
        for size in image.shape[-2:]:
            extra = max(1, round(size * factor)) - size  # > 0: crop room, < 0: padding
            offset.append(int(rng.integers(min(0, extra), max(0, extra) + 1)))
        return zoom(image, label, factor, (offset[0], offset[1]))
