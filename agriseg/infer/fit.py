"""Does a raster fit a model? The one place that answers, for ``info --model`` and ``predict``.

Hard problems (wrong band count; a dtype the normalization was not made for, when the user
asked for the model's range as it is) stop prediction; soft ones (no CRS, a pixel size far from
the training data's that is not resampled) are warnings, because the user may know better,
but they are always said. What is adapted instead (another pixel size, another value range)
is planned here too: :func:`input_scaling` decides how raster values reach the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio

from agriseg.errors import ModelMismatchError
from agriseg.models.card import ModelCard
from agriseg.raster.io import MaskSource, band_names, pixel_size_m, select_bands
from agriseg.raster.ranges import InputScaling, percentile_range
from agriseg.raster.resample import plan_resample

PIXEL_SIZE_TOLERANCE = 1.5  # ratio beyond which a model sees objects at an unfamiliar scale


@dataclass
class FitReport:
    indexes: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)  # what prediction will adjust, and how

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self, name: str) -> None:
        if self.problems:
            raise ModelMismatchError(f"{name}: {self.problems[0]}")

    def summary(self, names: Sequence[str]) -> dict[str, Any]:
        """Plain values, with the names (``names``: the raster's band names) of the bands."""
        return {"fits": self.ok, "bands": list(self.indexes),
                "band_names": [names[i - 1] for i in self.indexes],
                "problems": list(self.problems), "warnings": list(self.warnings),
                "adapted": list(self.adapted)}


def check_fit(src: rasterio.DatasetReader, card: ModelCard,
              bands: Sequence[int] | None = None, resample: str = "auto",
              input_range: str = "auto") -> FitReport:
    """What stops ``src`` from running through the model and what deserves a warning, given
    the ``resample`` and ``input_range`` modes (see :class:`~agriseg.options.PredictOptions`)."""
    report = FitReport()
    try:
        report.indexes = select_bands(src, card.bands, bands)
    except ModelMismatchError as e:
        report.problems.append(str(e).removeprefix(f"{src.name}: "))
    names = band_names(src)
    if report.indexes and not bands and not all(b.lower() in names for b in card.bands):
        report.warnings.append(
            f"band names ({', '.join(names)}) do not name the model's bands "
            f"({', '.join(card.bands)}); using bands {report.indexes} in file order — pass "
            "--bands if that is wrong")
    dtype = src.dtypes[0]
    if dtype != card.dtype and input_range != "model":
        how = "each band's 2-98% percentiles" if input_range == "auto" else \
            f"the range {input_range}"
        report.adapted.append(f"data type {dtype}, model trained on {card.dtype}: {how} mapped "
                              "onto the model's range (--input-range)")
    elif dtype != card.dtype:
        report.problems.append(
            f"data type {dtype} does not fit the model, which was trained on {card.dtype} values "
            f"(its normalization is in {card.dtype} units); use --input-range auto (per-band "
            "2-98% stretch) or --input-range MIN,MAX to map the raster's values onto the "
            "model's range")
    if src.crs is None:
        report.warnings.append("raster has no CRS: outputs will have none, and areas cannot be "
                               "given in metres")
    px = pixel_size_m(src)
    if px and card.pixel_size_m:
        ratio = px / card.pixel_size_m
        if plan_resample(src, card.pixel_size_m, resample) is not None:  # prediction's own rule
            report.adapted.append(
                f"pixel size {px:.4g} m is {ratio:.2g}x the model's {card.pixel_size_m:.4g} m: "
                "read at the model's pixel size, results on the raster's grid (--resample)")
        elif ratio > PIXEL_SIZE_TOLERANCE or ratio < 1 / PIXEL_SIZE_TOLERANCE:
            fix = "--resample auto reads the raster at the model's pixel size" \
                if resample == "off" else "a rotated grid is not resampled: warp it north-up"
            report.warnings.append(
                f"pixel size {px:.4g} m is {ratio:.2g}x the model's {card.pixel_size_m:.4g} m; "
                f"plants will look larger or smaller than in training ({fix})")
    return report


def model_range(card: ModelCard, full: bool = False
                ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The value range a model was trained on, per band.

    A normalization measured on the training images (``meanstd``) gives mean +- 2 std, about
    the 2-98% of the training pixels: what a percentile stretch of new imagery should land on.
    ``full``: the whole range its values live in, what a given ``MIN,MAX`` maps onto: the
    dtype's for an integer model. A plain scale (``value / s``) gives ``0 .. s`` either way.
    Ranges are kept inside the card dtype's limits.
    """
    norm = card.normalization
    lo_limit, hi_limit = dtype_limits(card.dtype)
    if full and np.isfinite(hi_limit) and norm.mode != "scale":
        n = len(norm.mean)
        return (max(lo_limit, 0.0),) * n, (hi_limit,) * n
    if norm.mode == "scale":
        lows, highs = [0.0] * len(norm.std), [float(s) for s in norm.std]
    else:
        lows = [m - 2 * s for m, s in zip(norm.mean, norm.std, strict=True)]
        highs = [m + 2 * s for m, s in zip(norm.mean, norm.std, strict=True)]
    return (tuple(float(max(v, lo_limit)) for v in lows),
            tuple(float(min(v, hi_limit)) for v in highs))


def dtype_limits(dtype: str) -> tuple[float, float]:
    """The values ``dtype`` can hold (unbounded for floats)."""
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return -np.inf, np.inf


def input_scaling(src: rasterio.DatasetReader, indexes: Sequence[int], card: ModelCard,
                  input_range: str = "auto") -> InputScaling | None:
    """How ``src``'s values are brought onto the model's range before normalization, or None
    when they are used as they are.

    ``model``: as they are. ``auto``: as they are when the raster's dtype is the model's,
    else each band's 2-98% percentiles (overviews or a strided sample) map onto the model's
    training range. ``"MIN,MAX"``: that raster range maps onto the model's full range (0-255
    for an 8-bit model), every band.
    """
    if input_range == "model" or (input_range == "auto" and src.dtypes[0] == card.dtype):
        return None
    target_low, target_high = model_range(card, full=input_range != "auto")
    n = len(indexes)
    if input_range == "auto":
        low, high, source = percentile_range(src, indexes, MaskSource.of(src, indexes))
        mode = "auto"
    else:
        lo, hi = (float(v) for v in input_range.split(","))
        low, high, source, mode = (lo,) * n, (hi,) * n, "--input-range", "given"
    return InputScaling(low=low, high=high, target_low=target_low, target_high=target_high,
                        mode=mode, source=source, limits=dtype_limits(card.dtype))

