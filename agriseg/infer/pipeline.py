"""Raster in, class mask out: tiler -> predictor -> stitcher -> COG, streaming all the way.

A reader thread reads strips and cuts normalized patches while the model runs; the stitcher
releases finished rows, which a writer thread compresses into the COGs, as soon as no later
patch can touch them. Peak memory is set by the patch size, batch size and raster width, never
by the raster's height. A raster at another pixel size than the model's is read through a
warped VRT at the model's (:mod:`agriseg.raster.resample`) and its results are written back on
its own grid (:mod:`agriseg.infer.regrid`); imagery of another dtype is brought onto the
model's value range (:func:`agriseg.infer.fit.input_scaling`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import rasterio
from tqdm import tqdm

from agriseg.constants import BACKGROUND, LOW_CONFIDENCE_PERCENT, NODATA
from agriseg.infer.devices import resolve_device
from agriseg.infer.engines import Engine, model_card, open_engine
from agriseg.infer.fit import check_fit, input_scaling
from agriseg.infer.prefetch import background_sink, prefetch
from agriseg.infer.regrid import BackToInput
from agriseg.infer.stitcher import FinishedRows, StripAccumulator
from agriseg.infer.tta import with_tta
from agriseg.models.card import ModelCard
from agriseg.options import PredictOptions, with_options
from agriseg.outputs import check_output
from agriseg.raster.grid import PatchGrid, default_overlap, make_grid
from agriseg.raster.io import MaskSource, gdal_env, open_raster
from agriseg.raster.ranges import InputScaling
from agriseg.raster.reader import PatchRow, StripReader, cut_patch
from agriseg.raster.resample import model_grid, plan_resample
from agriseg.raster.writers import (
    class_colormap,
    class_mask_sidecars,
    class_tags,
    cog_writer,
    confidence_sidecars,
)

if TYPE_CHECKING:
    from agriseg.models.checkpoint import Model

log = logging.getLogger("agriseg")


@dataclass
class Batch:
    images: np.ndarray | None  # (N, C, H, W) float32, normalized (None once sent)
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
    device: str = "cpu"  # where the model ran (``auto`` resolved)
    backend: str = "torch"  # what ran it: torch or onnx
    batch_size: int = 0  # patches per forward pass (``auto`` resolved)
    resample: dict[str, Any] | None = None  # the model grid, when the raster was resampled
    input_range: dict[str, Any] | None = None  # the value mapping, when one was applied
    tta: str = "none"  # test-time augmentation used
    # pixels of a non-background class whose confidence is below LOW_CONFIDENCE_PERCENT
    # (None when no confidence was written)
    low_confidence_vegetation_pixels: int | None = None


def iter_batches(reader: Iterable[PatchRow], grid: PatchGrid, card: ModelCard, batch_size: int,
                 scaling: InputScaling | None = None) -> Iterator[Batch]:
    """Normalized patches in grid order, ``batch_size`` at a time (batches may span rows);
    ``scaling`` first maps raster values onto the model's range."""
    shape = (batch_size, card.in_channels, grid.patch_h, grid.patch_w)
    images = np.empty(shape, dtype=np.float32)  # filled in place: no list, no stacking copy
    keys: list[tuple[int, int]] = []
    row_valid: dict[int, np.ndarray] = {}
    for row in reader:
        row_valid[row.index] = row.valid.copy()  # the reader reuses its buffer
        for j, x0 in enumerate(grid.cols):
            data, valid = cut_patch(row, x0, grid)
            if scaling is not None:
                data = scaling.apply(data)
            card.normalization.apply(data, valid, out=images[len(keys)])
            keys.append((row.index, j))
            if len(keys) == batch_size:
                yield Batch(images, keys, row_valid)
                images, keys, row_valid = np.empty(shape, dtype=np.float32), [], {}
    if keys:
        yield Batch(images[:len(keys)], keys, row_valid)


def predict_raster(src: str | os.PathLike, dst: str | os.PathLike, *,
                   model: str | os.PathLike | Model | None = None,
                   options: PredictOptions | None = None,
                   confidence: str | os.PathLike | None = None, overwrite: bool = False,
                   progress: bool = False, **option_kw: Any) -> PredictResult:
    """Predict a class mask for the raster ``src`` and write it to ``dst`` as a COG.

    Parameters
    ----------
    src, dst
        Input raster (any GDAL-readable file) and the class-mask GeoTIFF to write.
    model
        A checkpoint path, a :class:`~agriseg.models.checkpoint.Model` from
        :func:`~agriseg.models.checkpoint.load_model`, or None for the default model.
    options, **option_kw
        :class:`~agriseg.options.PredictOptions`, and/or its fields as keywords
        (``patch_px``, ``overlap_px``, ``batch_size``, ``device``, ``blend``, ``bands``, ``amp``).
    confidence
        Also write the winning class's probability (percent, uint8 COG) here.
    overwrite, progress
        Replace existing outputs; show a progress bar on stderr.

    Returns
    -------
    PredictResult
        Paths, size, patch grid, pixels per class, timings and warnings.

    Raises
    ------
    AgrisegError
        Missing or unreadable raster or checkpoint, a raster that does not fit the model, an
        output that exists without ``overwrite``, a bad option. Both outputs appear only when
        complete.
    """
    t0 = time.perf_counter()
    opts = with_options(PredictOptions, options, option_kw)
    if str(opts.device).startswith("cuda"):
        resolve_device(opts.device)  # fails before any work when CUDA is absent
    dst = check_output(dst, overwrite)
    conf_path = check_output(confidence, overwrite) if confidence else None
    card = model.card if isinstance(model, Engine) else model_card(model)  # fails early
    with open_raster(src) as ds, gdal_env(ds, opts.threads):
        fit = check_fit(ds, card, opts.bands, opts.resample, opts.input_range)
        fit.raise_for_problems(str(src))
        for w in fit.warnings:
            log.warning("%s: %s", src, w)
        plan = plan_resample(ds, card.pixel_size_m, opts.resample)
        scaling = input_scaling(ds, fit.indexes, card, opts.input_range)
        if plan is not None:
            log.info("%s: pixel size %.4g m, model's %.4g m: reading at the model's pixel size "
                     "(%d x %d px)", src, plan.input_px_m, plan.model_px_m, plan.width,
                     plan.height)
        if scaling is not None:
            log.info("%s: values %s-%s (%s) mapped onto the model's %s-%s", src,
                     _fmt(scaling.low), _fmt(scaling.high), scaling.source,
                     _fmt(scaling.target_low), _fmt(scaling.target_high))
        engine = engine_for(model, opts)
        with model_grid(ds, plan, opts.threads) as mds, \
                MaskOutputs(ds, card, dst, conf_path, overwrite) as outputs:
            grid = patch_grid(mds.height, mds.width, engine, opts)
            reader = StripReader(mds, fit.indexes, grid, MaskSource.of(mds, fit.indexes))
            sink = outputs if plan is None else BackToInput(outputs, plan, ds.height, ds.width)
            batch_size = engine.batch_size(opts.batch_size, grid.patch_h, grid.patch_w)
            opts = dataclasses.replace(opts, batch_size=batch_size)
            model_s = run_patches(grid, reader, engine, opts, sink, conf_path is not None,
                                  progress, scaling)
        width, height = ds.width, ds.height
    return PredictResult(
        mask_path=dst, confidence_path=conf_path, width=width, height=height,
        patches=len(grid), patch_px=max(grid.patch_h, grid.patch_w), overlap_px=grid.overlap_px,
        class_pixels=pixels_per_class(outputs.counts, card),
        nodata_pixels=int(outputs.counts[NODATA]),
        seconds=time.perf_counter() - t0, model_seconds=model_s, warnings=fit.warnings,
        device=engine.device, backend=engine.backend, batch_size=batch_size,
        resample=plan.summary((height, width)) if plan is not None else None,
        input_range=scaling.summary() if scaling is not None else None, tta=opts.tta,
        low_confidence_vegetation_pixels=outputs.low_conf if conf_path is not None else None)


def _fmt(values: tuple[float, ...]) -> str:
    return "/".join(f"{v:.6g}" for v in values)


def engine_for(model: Any, opts: PredictOptions) -> Engine:
    """``model`` ready to run with the options' backend, device, AMP and threads."""
    if isinstance(model, Engine):
        return model
    return open_engine(model, opts.backend, opts.device, opts.amp, opts.threads)


def patch_grid(height: int, width: int, engine: Engine, opts: PredictOptions) -> PatchGrid:
    """The patch grid for a ``height`` x ``width`` image: the options' or the card's patch
    size, 1/8 overlap by default, patches a multiple of the network's output stride."""
    patch_px = opts.patch_px or engine.card.patch_px
    overlap_px = default_overlap(patch_px) if opts.overlap_px is None else opts.overlap_px
    return make_grid(height, width, patch_px, overlap_px, engine.input_divisor)


def run_patches(grid: PatchGrid, reader: Iterable[PatchRow], engine: Engine,
                opts: PredictOptions, outputs: RowSink, confidence: bool,
                progress: bool, scaling: InputScaling | None = None) -> float:
    """Predict every patch of ``grid`` read by ``reader``, blend, and hand finished rows to
    ``outputs``; returns the seconds spent in the model.

    Three threads: the reader cuts and normalizes the next batch, this thread runs the model,
    and the stitcher blends each batch's logits and writes the finished rows, so the model
    never waits for either (both helpers run at a lower priority than the model).
    """
    engine = with_tta(engine, opts.tta)  # here, so predict, arrays and evaluate all get it
    acc = StripAccumulator(grid, engine.card.num_classes, opts.blend, confidence=confidence)
    model_s = 0.0
    row = -1
    batch_size = engine.batch_size(opts.batch_size, grid.patch_h, grid.patch_w)
    bar = tqdm(total=len(grid), unit="patch", desc="predict", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)

    def blend(item: tuple[Batch, np.ndarray]) -> None:  # on the stitcher thread
        nonlocal row
        batch, logits = item
        for (i, j), patch_logits in zip(batch.keys, logits, strict=True):
            if i != row:
                outputs.write(acc.start_row(i, batch.row_valid[i]))
                row = i
            acc.add(i, j, patch_logits)
        bar.update(len(batch.keys))

    def collect(batch: Batch, result: Callable[[], np.ndarray]) -> None:
        nonlocal model_s
        t = time.perf_counter()
        logits = result()
        model_s += time.perf_counter() - t
        if engine.asynchronous:  # a pinned buffer the next submit reuses: the stitcher copies
            logits = logits.copy()
        stitch((batch, logits))

    with bar, background_sink(blend, depth=1) as stitch:
        batches = iter_batches(reader, grid, engine.card, batch_size, scaling)
        pending = None  # on CUDA: the batch in flight, collected once the next one is queued
        # one batch read ahead is enough: reading and normalizing take a fraction of a forward
        for batch in prefetch(batches, depth=1):
            t = time.perf_counter()
            result = engine.submit(batch.images)  # the whole forward pass on the CPU
            model_s += time.perf_counter() - t
            batch.images = None  # sent: only its keys are needed now
            if pending is not None:
                collect(*pending)
            pending = (batch, result)
            if not engine.asynchronous:  # done already: hold no second batch
                collect(*pending)
                pending = None
        if pending is not None:
            collect(*pending)
    outputs.write(acc.close())
    return model_s


class RowSink(Protocol):
    """Where finished rows go: the COG writers, or arrays in memory."""

    def write(self, rows: Iterable[FinishedRows]) -> None: ...


class MaskOutputs(contextlib.ExitStack):
    """The class-mask COG (and optional confidence COG) being written, plus class counts.

    Both files are committed only when the ``with`` block ends without an error.
    """

    def __init__(self, src: rasterio.DatasetReader, card: ModelCard, dst: Path,
                 conf_path: Path | None, overwrite: bool) -> None:
        super().__init__()
        self.args = (src, card, dst, conf_path, overwrite)
        self.counts = np.zeros(256, dtype=np.int64)
        self.low_conf = 0  # vegetated pixels (not background, not no-data) below 60%

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
        mask_sidecars = class_mask_sidecars(dst, card.classes, card.colors)
        self.mask = self.enter_context(cog_writer(
            dst, resampling="mode", colormap=class_colormap(card.colors),
            tags=class_tags(card.classes, card.colors), description="class",
            sidecars=mask_sidecars, **kw))
        self.conf = None
        if conf_path is not None:
            # the style QGIS loads with each raster; never two files for one name
            conf_sidecars = {p: text for p, text in confidence_sidecars(conf_path).items()
                             if p not in mask_sidecars}
            self.conf = self.enter_context(cog_writer(
                conf_path, resampling="average", description="confidence_percent",
                sidecars=conf_sidecars,
                tags={"units": "percent",
                      "meaning": "softmax probability of the predicted class"}, **kw))

    def write(self, rows: Iterable[FinishedRows]) -> None:
        for fin in rows:
            self.mask.write(fin.y0, fin.classes)
            self.counts += np.bincount(fin.classes.ravel(), minlength=256)
            if self.conf is not None:
                self.conf.write(fin.y0, fin.confidence)
                vegetated = (fin.classes != BACKGROUND) & (fin.classes != NODATA)
                self.low_conf += int(np.count_nonzero(
                    vegetated & (fin.confidence < LOW_CONFIDENCE_PERCENT)))


def pixels_per_class(counts: np.ndarray, card: ModelCard) -> dict[str, int]:
    """Class name -> pixel count, from a bincount of class ids."""
    return {name: int(counts[i]) for i, name in enumerate(card.classes)}
