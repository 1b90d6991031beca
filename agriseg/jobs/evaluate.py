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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from agriseg.constants import NODATA
from agriseg.errors import RasterError
from agriseg.metrics import ConfusionMatrix
from agriseg.models.card import ModelCard
from agriseg.outputs import atomic_output, check_output
from agriseg.raster.labels import LabelReader
from agriseg.samples import PathsArg, pair_samples
from agriseg.vector.labels import open_labels

log = logging.getLogger("agriseg")


def pair_inputs(images: PathsArg, labels: PathsArg) -> list[tuple[Path, Path]]:
    """``(image, labels)`` pairs by :func:`~agriseg.samples.pair_samples`'s rule."""
    return [(s.image, s.labels) for s in pair_samples(images, labels)]


def evaluate_model(model: str | os.PathLike | None, images: PathsArg, labels: PathsArg, *,
                   label_field: str | None = None, patch_px: int | None = None,
                   overlap_px: int | None = None, batch_size: int = 8, device: str = "auto",
                   blend: str = "hann", bands: Sequence[int] | None = None,
                   out_json: str | os.PathLike | None = None, overwrite: bool = False,
                   progress: bool = False) -> dict[str, Any]:
    """Metrics of checkpoint ``model`` over ``images`` against ``labels``, overall and per image.

    Returns ``{"model", "classes", "overall", "per_image", "pixels", "seconds", ...}`` where
    ``overall`` and each ``per_image`` entry hold
    :meth:`~agriseg.metrics.ConfusionMatrix.compute`'s metrics, with undefined values
    (NaN) as ``None``. With ``out_json`` the result is also written there, atomically.
    """
    from agriseg.models.checkpoint import load_checkpoint, read_card
    from agriseg.models.default import model_or_default

    t0 = time.perf_counter()
    model = model_or_default(model)
    card = read_card(model)  # a bad checkpoint fails before anything else
    pairs = pair_inputs(images, labels)
    if out_json is not None:
        check_output(out_json, overwrite)
    net, card = load_checkpoint(model)
    total = ConfusionMatrix(card.num_classes, ignore_index=NODATA)
    per_image = []
    with tempfile.TemporaryDirectory(prefix="agriseg-evaluate-") as tmp:
        for i, (image, label) in enumerate(pairs):
            t = time.perf_counter()
            cm = _evaluate_one(net, card, image, label, Path(tmp) / f"mask_{i}.tif",
                               label_field=label_field, patch_px=patch_px,
                               overlap_px=overlap_px, batch_size=batch_size, device=device,
                               blend=blend, bands=bands, progress=progress)
            total.merge(cm)
            metrics = cm.compute()
            log.info("%s: mIoU %.4f", image, metrics["miou"])
            per_image.append({"image": str(image), "labels": str(label),
                              "seconds": time.perf_counter() - t, **_json_safe(metrics)})
    overall = _json_safe(total.compute())
    result = {"model": str(model), "classes": list(card.classes), "images": len(pairs),
              "pixels": overall["pixels"], "overall": overall, "per_image": per_image,
              "params": {"patch_px": patch_px or card.patch_px, "overlap_px": overlap_px,
                         "blend": blend, "label_field": label_field,
                         "bands": list(bands) if bands else None},
              "seconds": time.perf_counter() - t0}
    if out_json is not None:
        with atomic_output(out_json, overwrite) as tmp_json:
            tmp_json.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _evaluate_one(net: Any, card: ModelCard, image: Path, label: Path, mask_path: Path, *,
                  label_field: str | None, progress: bool, **predict_kw: Any) -> ConfusionMatrix:
    """Predict ``image`` into ``mask_path`` and count it against ``label`` strip by strip."""
    import rasterio

    from agriseg.infer.pipeline import predict_raster
    from agriseg.raster.io import open_raster

    with open_raster(image) as src, open_labels(label, src, label_field=label_field,
                                                       classes=card.classes) as lr:
        predict_raster(image, net, mask_path, card=card, progress=progress, **predict_kw)
        cm = ConfusionMatrix(card.num_classes, ignore_index=NODATA)
        with rasterio.open(mask_path) as mask:
            strip = mask.block_shapes[0][0]
            for y0 in range(0, mask.height, strip):
                window = Window(0, y0, mask.width, min(strip, mask.height - y0))
                truth = _read_truth(lr, window, label, card)
                cm.update(mask.read(1, window=window), truth)
    mask_path.unlink()
    if not cm.matrix.any():
        log.warning("%s: no labelled pixels (with image data) in %s; it adds nothing to the "
                    "scores", image, label)
    return cm


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
