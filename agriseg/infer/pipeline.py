"""Raster in, class mask out: tiler -> predictor -> stitcher -> COG, streaming all the way.

A reader thread reads strips and cuts normalized patches while the model runs; the stitcher
releases finished rows to the writers as soon as no later patch can touch them. Peak memory is
set by the patch size, batch size and raster width, never by the raster's height.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from torch import nn
from tqdm import tqdm

from agriseg.errors import ConfigError
from agriseg.infer.blending import BLEND_MODES, BlendMode
from agriseg.infer.devices import resolve_device
from agriseg.infer.predictor import Predictor, prefetch
from agriseg.infer.stitcher import NODATA, FinishedRows, StripAccumulator
from agriseg.models.card import ModelCard
from agriseg.models.checkpoint import load_checkpoint, read_card
from agriseg.models.default import model_or_default
from agriseg.models.fit import check_fit
from agriseg.models.registry import input_divisor
from agriseg.outputs import check_output
from agriseg.raster.grid import PatchGrid, default_overlap, make_grid
from agriseg.raster.io import MaskSource, gdal_env, open_raster
from agriseg.raster.reader import StripReader, cut_patch
from agriseg.raster.writers import class_colormap, class_tags, cog_writer

log = logging.getLogger("agriseg")


@dataclass
class Batch:
    images: np.ndarray  # (N, C, H, W) float32, normalized
    keys: list[tuple[int, int]]  # (patch row, patch column) of each image
    row_valid: dict[int, np.ndarray]  # valid mask of each patch row starting in this batch


@dataclass
class PredictResult:
    mask_path: Path
    confidence_path: Path | None
    width: int
    height: int
    patches: int
    patch_px: int
    overlap_px: int
    class_pixels: dict[str, int]
    nodata_pixels: int
    seconds: float
    model_seconds: float
    warnings: list[str] = field(default_factory=list)


def iter_batches(reader: StripReader, grid: PatchGrid, card: ModelCard, batch_size: int
                 ) -> Iterator[Batch]:
    """Normalized patches in grid order, ``batch_size`` at a time (batches may span rows)."""
    images: list[np.ndarray] = []
    keys: list[tuple[int, int]] = []
    row_valid: dict[int, np.ndarray] = {}
    for row in reader:
        row_valid[row.index] = row.valid
        for j, x0 in enumerate(grid.cols):
            data, valid = cut_patch(row, x0, grid)
            images.append(card.normalization.apply(data, valid))
            keys.append((row.index, j))
            if len(images) == batch_size:
                yield Batch(np.stack(images), keys, row_valid)
                images, keys, row_valid = [], [], {}
    if images:
        yield Batch(np.stack(images), keys, row_valid)


def predict_raster(raster: str | os.PathLike, model: str | os.PathLike | nn.Module | None,
                   dst: str | os.PathLike, *, card: ModelCard | None = None,
                   patch_px: int | None = None, overlap_px: int | None = None,
                   batch_size: int = 8, device: str = "auto", blend: BlendMode = "hann",
                   bands: Sequence[int] | None = None,
                   confidence: str | os.PathLike | None = None, overwrite: bool = False,
                   amp: bool = True, progress: bool = False) -> PredictResult:
    """Predict a class mask for ``raster`` and write it to ``dst`` as a COG.

    ``model`` is a checkpoint path (its card is read from it), a module with ``card``, or
    None for the default model shipped with agriseg.
    ``confidence`` optionally names a second COG of the winning class's softmax probability in
    percent. Both outputs appear only when complete.
    """
    t0 = time.perf_counter()
    if blend not in BLEND_MODES:
        raise ConfigError(f"unknown blend mode {blend!r}; use one of {', '.join(BLEND_MODES)}")
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    resolve_device(device)  # fail before any work when CUDA is asked for but absent
    dst = check_output(dst, overwrite)
    conf_path = check_output(confidence, overwrite) if confidence else None
    if isinstance(model, nn.Module):
        if card is None:
            raise ValueError("a model passed as a module needs its card")
    else:
        model = model_or_default(model)
        card = read_card(model)  # cheap header check before opening anything heavy
    with open_raster(raster) as src, gdal_env(src):
        fit = check_fit(src, card, bands)
        fit.raise_for_problems(str(raster))
        for w in fit.warnings:
            log.warning("%s: %s", raster, w)
        if not isinstance(model, nn.Module):
            model, card = load_checkpoint(model)
        patch_px = patch_px or card.patch_px
        if overlap_px is None:
            overlap_px = default_overlap(patch_px)
        grid = make_grid(src.height, src.width, patch_px, overlap_px, input_divisor(model))
        predictor = Predictor(model, device=device, amp=amp)
        reader = StripReader(src, fit.indexes, grid, MaskSource.of(src, fit.indexes))
        acc = StripAccumulator(grid, card.num_classes, blend, confidence=conf_path is not None)
        with MaskOutputs(src, card, dst, conf_path, overwrite) as outputs:
            model_s = _run(grid, reader, card, batch_size, predictor, acc, outputs, progress)
            outputs.write(acc.close())
    counts = outputs.counts
    return PredictResult(
        mask_path=dst, confidence_path=conf_path, width=grid.width, height=grid.height,
        patches=len(grid), patch_px=max(grid.patch_h, grid.patch_w), overlap_px=overlap_px,
        class_pixels={name: int(counts[i]) for i, name in enumerate(card.classes)},
        nodata_pixels=int(counts[NODATA]), seconds=time.perf_counter() - t0,
        model_seconds=model_s, warnings=fit.warnings)


class MaskOutputs(contextlib.ExitStack):
    """The class-mask COG (and optional confidence COG) being written, plus class counts.

    Both files are committed only when the ``with`` block ends without an error.
    """

    def __init__(self, src: rasterio.DatasetReader, card: ModelCard, dst: Path,
                 conf_path: Path | None, overwrite: bool) -> None:
        super().__init__()
        self.args = (src, card, dst, conf_path, overwrite)
        self.counts = np.zeros(256, dtype=np.int64)

    def __enter__(self) -> MaskOutputs:
        super().__enter__()
        try:
            self._open()
        except BaseException:
            if not self.__exit__(*sys.exc_info()):
                raise
        return self

    def _open(self) -> None:
        src, card, dst, conf_path, overwrite = self.args
        kw = dict(width=src.width, height=src.height, crs=src.crs, transform=src.transform,
                  overwrite=overwrite)
        self.mask = self.enter_context(cog_writer(
            dst, resampling="mode", colormap=class_colormap(card.colors),
            tags=class_tags(card.classes, card.colors), description="class", **kw))
        self.conf = None
        if conf_path is not None:
            self.conf = self.enter_context(cog_writer(
                conf_path, resampling="average", description="confidence_percent",
                tags={"units": "percent",
                      "meaning": "softmax probability of the predicted class"}, **kw))

    def write(self, rows: Iterable[FinishedRows]) -> None:
        for fin in rows:
            self.mask.write(fin.y0, fin.classes)
            self.counts += np.bincount(fin.classes.ravel(), minlength=256)
            if self.conf is not None:
                self.conf.write(fin.y0, fin.confidence)


def _run(grid: PatchGrid, reader: StripReader, card: ModelCard, batch_size: int,
         predictor: Predictor, acc: StripAccumulator, outputs: MaskOutputs,
         progress: bool) -> float:
    """The main loop; returns the seconds spent in the model."""
    model_s = 0.0
    row = -1
    bar = tqdm(total=len(grid), unit="patch", desc="predict", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    with bar:
        for batch in prefetch(iter_batches(reader, grid, card, batch_size)):
            t = time.perf_counter()
            logits = predictor(batch.images)
            model_s += time.perf_counter() - t
            for (i, j), patch_logits in zip(batch.keys, logits, strict=True):
                if i != row:
                    outputs.write(acc.start_row(i, batch.row_valid[i]))
                    row = i
                acc.add(i, j, patch_logits)
            bar.update(len(batch.keys))
    return model_s
