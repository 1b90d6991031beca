"""Per-band mean and standard deviation of the training images, for the model card.

The statistics only need to be good to a few percent, so a large image is not read whole: a
bounded number of random windows (``max_pixels`` in all, shared between the images by their
size) is read and merged with Chan's parallel update, so memory is one window whatever the
image size. Images small enough for their share are read completely, in strips, which makes the
result exact. No-data pixels (nodata value, alpha, mask, NaN) never count. Windows come from
``numpy.random.default_rng((seed, image index))``: the same seed gives the same statistics.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from agriseg.errors import RasterError
from agriseg.models.card import Normalization
from agriseg.raster.io import MaskSource, open_raster
from agriseg.samples import Sample
from agriseg.training.checks import image_bands

log = logging.getLogger("agriseg")

BandsArg = Sequence[str] | Sequence[Sequence[int]] | None


class _Moments:
    """Running count, mean and sum of squared deviations per band (numerically stable)."""

    def __init__(self, n_bands: int) -> None:
        self.n = np.zeros(n_bands)
        self.mean = np.zeros(n_bands)
        self.m2 = np.zeros(n_bands)

    def add(self, band: int, x: np.ndarray) -> None:
        if not x.size:
            return
        x = x.astype(np.float64)
        nb, mb = x.size, x.mean()
        m2b = float(((x - mb) ** 2).sum())
        na = self.n[band]
        n = na + nb
        delta = mb - self.mean[band]
        self.mean[band] += delta * nb / n
        self.m2[band] += m2b + delta**2 * na * nb / n
        self.n[band] = n


def _indexes_for(src: rasterio.DatasetReader, bands: BandsArg, i: int) -> list[int]:
    if bands and not isinstance(bands[0], str):
        return [int(b) for b in bands[i]]  # type: ignore[union-attr]
    return image_bands(src, bands)  # type: ignore[arg-type]


def _windows(width: int, height: int, budget: float, window_px: int,
             rng: np.random.Generator) -> Iterator[Window]:
    """Full-width strips when the image fits the budget, else random windows (sorted by
    position so reads move through the file in order)."""
    if width * height <= budget:
        rows = max(1, 1_000_000 // width)
        for y in range(0, height, rows):
            yield Window(0, y, width, min(rows, height - y))
        return
    w, h = min(window_px, width), min(window_px, height)
    n = max(1, math.ceil(budget / (w * h)))
    ys = rng.integers(0, height - h + 1, n)
    xs = rng.integers(0, width - w + 1, n)
    for y, x in sorted(zip(ys.tolist(), xs.tolist(), strict=True)):
        yield Window(x, y, w, h)


def band_statistics(samples: Sequence[Sample], bands: BandsArg = None, *,
                    max_pixels: int = 2_000_000, seed: int = 0,
                    window_px: int = 256) -> Normalization:
    """Mean and (population) std per band over the valid pixels of ``samples``' images.

    ``bands`` are band names (matched per image like the datasets do), one list of 1-based
    indexes per image, or None for every non-alpha band. At most about ``max_pixels`` pixels
    are read in total. A band that is constant gets std 1 (with a warning) so that scaling
    stays defined.
    """
    if not samples:
        raise RasterError("no images to compute band statistics from")
    sizes = []
    for s in samples:
        with open_raster(s.image) as src:
            sizes.append(src.width * src.height)
    total = float(sum(sizes))
    moments: _Moments | None = None
    for i, s in enumerate(samples):
        budget = max_pixels * sizes[i] / total
        rng = np.random.default_rng((seed, i))
        with open_raster(s.image) as src:
            indexes = _indexes_for(src, bands, i)
            if moments is None:
                moments = _Moments(len(indexes))
            elif len(indexes) != len(moments.n):
                raise RasterError(f"{s.image}: {len(indexes)} bands selected but "
                                  f"{len(moments.n)} for the images before it")
            mask = MaskSource.of(src, indexes)
            for win in _windows(src.width, src.height, budget, window_px, rng):
                data = src.read(indexes, window=win)
                valid = mask.valid(src, data, indexes, win)
                for b in range(len(indexes)):
                    x = data[b][valid]
                    moments.add(b, x[np.isfinite(x)] if x.dtype.kind == "f" else x)
    assert moments is not None
    if (moments.n == 0).any():
        raise RasterError(f"no valid pixels in {', '.join(str(s.image) for s in samples)} "
                          f"(all no-data); cannot compute band statistics")
    std = np.sqrt(moments.m2 / moments.n)
    if (std == 0).any():
        log.warning("band(s) %s are constant in the training images; using std 1 for them",
                    ", ".join(str(b + 1) for b in np.flatnonzero(std == 0)))
        std[std == 0] = 1.0
    return Normalization(mean=tuple(float(m) for m in moments.mean),
                         std=tuple(float(v) for v in std))
