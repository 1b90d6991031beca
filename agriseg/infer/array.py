"""Prediction on an array in memory: the same patches, model and blending as ``predict``.

For notebooks, web services and other programs that already hold the pixels (a camera frame, a
window they read themselves): no files are read or written. The array is cut into the same
overlapping patches as a raster would be, normalized by the model card and blended by the same
:class:`~agriseg.infer.stitcher.StripAccumulator`, so ``predict_array`` on a raster's pixels
gives exactly the mask ``predict`` writes for that raster.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from agriseg.constants import NODATA
from agriseg.errors import ModelMismatchError
from agriseg.infer.devices import resolve_device
from agriseg.infer.engines import Engine
from agriseg.infer.pipeline import engine_for, patch_grid, pixels_per_class, run_patches
from agriseg.infer.stitcher import FinishedRows
from agriseg.options import PredictOptions, with_options
from agriseg.raster.grid import PatchGrid
from agriseg.raster.io import valid_pixels
from agriseg.raster.reader import PatchRow

if TYPE_CHECKING:
    from agriseg.models.checkpoint import Model


@dataclass
class ArrayPrediction:
    """Class ids and confidence for every pixel of the array (255 = no data)."""

    classes: np.ndarray  # (height, width) uint8
    confidence: np.ndarray | None  # (height, width) uint8 percent 0-100, or None
    class_pixels: dict[str, int]
    patches: int
    seconds: float


def predict_array(array: np.ndarray, model: Model | str | os.PathLike | None = None, *,
                  valid: np.ndarray | None = None, nodata: float | None = None,
                  options: PredictOptions | None = None, confidence: bool = True,
                  progress: bool = False, **option_kw: Any) -> ArrayPrediction:
    """Label every pixel of an in-memory image with the model's classes.

    Parameters
    ----------
    array
        ``(bands, height, width)`` (or ``(height, width)`` for one band) in the model card's
        band order and dtype (e.g. uint8 RGB); ``bands`` (1-based) picks and orders bands.
    model
        A :class:`~agriseg.models.checkpoint.Model` (load it once with
        :func:`~agriseg.models.checkpoint.load_model`), a checkpoint path, or None for the
        default model.
    valid, nodata
        Which pixels hold data: a boolean ``(height, width)`` mask, or a no-data value (a pixel
        is no-data when every band equals it; NaN counts as no-data in float arrays).
    options, **option_kw
        :class:`~agriseg.options.PredictOptions` and/or its fields as keywords.
    confidence
        Also return the winning class's probability in percent.

    Returns
    -------
    ArrayPrediction
        ``classes`` (uint8, 255 where not valid), ``confidence``, pixels per class.

    Raises
    ------
    ModelMismatchError
        The array's shape, band count or dtype does not fit the model card.
    """
    t0 = time.perf_counter()
    opts = with_options(PredictOptions, options, option_kw)
    if str(opts.device).startswith("cuda"):
        resolve_device(opts.device)  # fails before any work when CUDA is absent
    engine = engine_for(model, opts)
    data = _bands_of(np.asarray(array), engine, opts)
    mask = _valid(data, valid, nodata)
    grid = patch_grid(data.shape[1], data.shape[2], engine, opts)
    out = ArrayOutputs(grid, confidence)
    run_patches(grid, _rows(data, mask, grid), engine, opts, out, confidence, progress)
    counts = np.bincount(out.classes.ravel(), minlength=256)
    return ArrayPrediction(
        classes=out.classes, confidence=out.confidence, patches=len(grid),
        class_pixels=pixels_per_class(counts, engine.card), seconds=time.perf_counter() - t0)


def _bands_of(data: np.ndarray, engine: Engine, opts: PredictOptions) -> np.ndarray:
    card = engine.card
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or 0 in data.shape:
        raise ModelMismatchError(f"array of shape {data.shape}: expected (bands, height, "
                                 f"width) or (height, width)")
    if opts.bands:
        bad = [b for b in opts.bands if not 1 <= b <= data.shape[0]]
        if bad:
            raise ModelMismatchError(f"band {bad[0]} does not exist (array has bands "
                                     f"1..{data.shape[0]})")
        data = data[[b - 1 for b in opts.bands]]
    if data.shape[0] != card.in_channels:
        raise ModelMismatchError(f"array has {data.shape[0]} bands but the model takes "
                                 f"{card.in_channels} ({', '.join(card.bands)}); pick them "
                                 f"with bands=[...]")
    if data.dtype != np.dtype(card.dtype):
        raise ModelMismatchError(f"array of {data.dtype} does not fit the model, which was "
                                 f"trained on {card.dtype} values; convert it to {card.dtype}")
    return data


def _valid(data: np.ndarray, valid: np.ndarray | None, nodata: float | None) -> np.ndarray:
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != data.shape[1:]:
            raise ModelMismatchError(f"valid mask of shape {valid.shape} does not match the "
                                     f"array's {data.shape[1:]}")
        return valid
    return valid_pixels(data, nodata)  # the rule rasters follow


def _rows(data: np.ndarray, valid: np.ndarray, grid: PatchGrid) -> Iterator[PatchRow]:
    for i, y0 in enumerate(grid.rows):
        rows = slice(y0, y0 + grid.read_h)
        yield PatchRow(index=i, y0=y0, data=data[:, rows], valid=valid[rows])


class ArrayOutputs:
    """Finished rows collected into whole arrays (a :class:`~agriseg.infer.pipeline.RowSink`)."""

    def __init__(self, grid: PatchGrid, confidence: bool) -> None:
        self.classes = np.full((grid.height, grid.width), NODATA, dtype=np.uint8)
        self.confidence = self.classes.copy() if confidence else None

    def write(self, rows: Iterable[FinishedRows]) -> None:
        for fin in rows:
            n = fin.classes.shape[0]
            self.classes[fin.y0:fin.y0 + n] = fin.classes
            if self.confidence is not None:
                self.confidence[fin.y0:fin.y0 + n] = fin.confidence
