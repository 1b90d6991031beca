"""Score a checkpoint against labelled rasters: the same sliding-window prediction as ``predict``,
compared with the labels pixel by pixel.

Each image is predicted with :func:`~agriseg.infer.pipeline.predict_raster` (so the score is the
score of what ``predict`` would deliver, seams and blending included) into a temporary mask,
which is then read back strip by strip beside the labels (any grid, CRS or polygons, through
:func:`~agriseg.vector.labels.open_labels`) into a confusion matrix. Memory stays bounded by a
strip, never the raster. Unknown labels (255) and image no-data (mask 255) are not counted.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from agriseg.constants import NODATA
from agriseg.errors import RasterError
from agriseg.infer.engines import Engine, model_card
from agriseg.infer.pipeline import engine_for
from agriseg.metrics import Calibration, ConfusionMatrix
from agriseg.models.card import ModelCard
from agriseg.options import PredictOptions, with_options
from agriseg.outputs import atomic_output, check_output
from agriseg.raster.labels import LabelReader
from agriseg.samples import PathsArg, pair_samples
from agriseg.vector.labels import open_labels

if TYPE_CHECKING:
    from agriseg.models.checkpoint import Model

log = logging.getLogger("agriseg")


def evaluate_model(images: PathsArg, labels: PathsArg, *,
                   model: str | os.PathLike | Model | None = None,
                   options: PredictOptions | None = None, label_field: str | None = None,
                   out_json: str | os.PathLike | None = None, overwrite: bool = False,
                   progress: bool = False, **option_kw: Any) -> dict[str, Any]:
    """Score a model over ``images`` against ``labels``, overall and per image.

    Parameters
    ----------
    images, labels
        Files, folders or globs. Images pair with labels by file name (``IMG_1.tif`` with
        ``IMG_1_labels.tif``, ``IMG_1.gpkg``...) by the same rule as training
        (:func:`~agriseg.samples.pair_samples`); one polygon file may label every image.
        Labels are rasters (255 = unknown, any grid) or polygons.
    model
        A checkpoint path, a loaded :class:`~agriseg.models.checkpoint.Model`, or None for
        the default model.
    options, **option_kw
        :class:`~agriseg.options.PredictOptions` and/or its fields as keywords: the images are
        predicted exactly as ``predict`` would.
    label_field
        The polygons' class attribute (ids, or class names of the model).
    out_json, overwrite, progress
        Also write the result there (atomically); replace it; show progress bars.

    Returns
    -------
    dict
        ``{"model", "classes", "images", "pixels", "overall", "per_image", "params",
        "seconds"}``; ``overall`` and each ``per_image`` entry hold
        :meth:`~agriseg.metrics.ConfusionMatrix.compute`'s metrics (IoU, F1, precision,
        recall, support, mIoU, pixel accuracy, confusion), undefined values as None, and
        ``ece``: the expected calibration error of the confidence (15 equal-width bins over
        the labelled pixels, :class:`~agriseg.metrics.Calibration`; the confidence is the
        written percent, so its resolution is 1%), which grows when the model meets imagery
        unlike its training data and is sure of wrong answers.

    Raises
    ------
    AgrisegError
        Unpaired or ambiguous inputs, unreadable files, labels outside the model's classes.
    """
    t0 = time.perf_counter()
    opts = with_options(PredictOptions, options, option_kw)
    model_card(model)  # a bad checkpoint fails before anything else
    pairs = [(s.image, s.labels) for s in pair_samples(images, labels)]
    if out_json is not None:
        check_output(out_json, overwrite)
    model = engine_for(model, opts)  # loaded (or exported) once for every image
    total = ConfusionMatrix(model.card.num_classes, ignore_index=NODATA)
    total_cal = Calibration()
    per_image = []
    with tempfile.TemporaryDirectory(prefix="agriseg-evaluate-") as tmp:
        for i, (image, label) in enumerate(pairs):
            t = time.perf_counter()
            cm, cal = _evaluate_one(model, image, label, Path(tmp) / f"mask_{i}.tif", opts,
                                    label_field, progress)
            total.merge(cm)
            total_cal.merge(cal)
            metrics = {**cm.compute(), "ece": cal.ece()}
            log.info("%s: mIoU %.4f", image, metrics["miou"])
            per_image.append({"image": str(image), "labels": str(label),
                              "seconds": time.perf_counter() - t, **_json_safe(metrics)})
    result = _result(model, pairs, total, total_cal, per_image, opts, label_field, t0)
    if out_json is not None:
        with atomic_output(out_json, overwrite) as tmp_json:
            tmp_json.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _result(model: Engine, pairs: list, total: ConfusionMatrix, cal: Calibration,
            per_image: list, opts: PredictOptions, label_field: str | None, t0: float
            ) -> dict[str, Any]:
    overall = _json_safe({**total.compute(), "ece": cal.ece(), "ece_bins": cal.bins})
    return {"model": str(model.model_path), "backend": model.backend,
            "classes": list(model.card.classes),
            "images": len(pairs), "pixels": overall["pixels"], "overall": overall,
            "per_image": per_image,
            "params": {"patch_px": opts.patch_px or model.card.patch_px,
                       "overlap_px": opts.overlap_px, "blend": opts.blend,
                       "label_field": label_field,
                       "bands": list(opts.bands) if opts.bands else None, "tta": opts.tta},
            "seconds": time.perf_counter() - t0}


def _evaluate_one(model: Engine, image: Path, label: Path, mask_path: Path,
                  opts: PredictOptions, label_field: str | None,
                  progress: bool) -> tuple[ConfusionMatrix, Calibration]:
    """Predict ``image`` into ``mask_path`` (and its confidence beside it) and count both
    against ``label`` strip by strip."""
    import rasterio

    from agriseg.infer.pipeline import predict_raster
    from agriseg.raster.io import open_raster

    card = model.card
    with open_raster(image) as src, open_labels(label, src, label_field=label_field,
                                                classes=card.classes) as lr:
        conf_path = mask_path.with_name(f"{mask_path.stem}_confidence.tif")
        predict_raster(image, mask_path, model=model, options=opts, confidence=conf_path,
                       progress=progress)
        cm = ConfusionMatrix(card.num_classes, ignore_index=NODATA)
        cal = Calibration(ignore_index=NODATA)
        with rasterio.open(mask_path) as mask, rasterio.open(conf_path) as conf:
            strip = mask.block_shapes[0][0]
            for y0 in range(0, mask.height, strip):
                window = Window(0, y0, mask.width, min(strip, mask.height - y0))
                truth = _read_truth(lr, window, label, card)
                pred = mask.read(1, window=window)
                cm.update(pred, truth)
                cal.update(pred, truth, conf.read(1, window=window))
    mask_path.unlink()
    conf_path.unlink()
    if not cm.matrix.any():
        log.warning("%s: no labelled pixels (with image data) in %s; it adds nothing to the "
                    "scores", image, label)
    return cm, cal


def _read_truth(labels: LabelReader, window: Window, path: Path, card: ModelCard) -> np.ndarray:
    truth = labels.read(window)
    known = truth[truth != NODATA]
    if known.size and int(known.max()) >= card.num_classes:
        bad = int(known.max())
        names = ", ".join(f"{i} {c}" for i, c in enumerate(card.classes))
        raise RasterError(f"{path}: label value {bad} is not a class of the model ({names}); "
                          f"use labels with the model's class ids, 255 = unknown")
    return truth


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    """NaN (undefined) -> None, so the result is valid JSON."""
    def fix(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return {k: fix(v) for k, v in metrics.items()}
