"""Does a raster fit a model? The one place that answers, for ``info --model`` and ``predict``.

Hard problems (wrong band count, a dtype the normalization was not made for) stop prediction;
soft ones (no CRS, a pixel size far from the training data's) are warnings, because the user may
know better, but they are always said.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import rasterio

from agriseg.errors import ModelMismatchError
from agriseg.models.card import ModelCard
from agriseg.raster.io import band_names, pixel_size_m, select_bands

PIXEL_SIZE_TOLERANCE = 1.5  # ratio beyond which a model sees objects at an unfamiliar scale


@dataclass
class FitReport:
    indexes: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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
                "problems": list(self.problems), "warnings": list(self.warnings)}


def check_fit(src: rasterio.DatasetReader, card: ModelCard,
              bands: Sequence[int] | None = None) -> FitReport:
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
    if dtype != card.dtype:
        report.problems.append(
            f"data type {dtype} does not fit the model, which was trained on {card.dtype} values "
            f"(its normalization is in {card.dtype} units); convert the raster to {card.dtype} "
            f"or use a model trained on {dtype} imagery")
    if src.crs is None:
        report.warnings.append("raster has no CRS: outputs will have none, and areas cannot be "
                               "given in metres")
    px = pixel_size_m(src)
    if px and card.pixel_size_m:
        ratio = px / card.pixel_size_m
        if ratio > PIXEL_SIZE_TOLERANCE or ratio < 1 / PIXEL_SIZE_TOLERANCE:
            report.warnings.append(
                f"pixel size {px:.4g} m is {ratio:.2g}x the model's {card.pixel_size_m:.4g} m; "
                "plants will look larger or smaller than in training (resample the raster to "
                "the model's pixel size for best results)")
    return report

