"""K-fold cross-validation by whole image: a recipe judged by its mean over folds, not one split.

One validation split of a handful of fields says more about which fields were drawn than about
the recipe. Here the images are dealt into K folds (:func:`~agriseg.samples.fold_samples`,
seeded); fold ``i`` is an ordinary training run (:func:`~agriseg.training.loop.train`) whose
``val_images`` are that fold's images, in ``OUT/fold-i/`` with its checkpoints, metrics and
``split.json``. Its last checkpoint (the end of the schedule) is then scored on those images
whole, with the same sliding-window prediction as ``predict``
(:func:`~agriseg.jobs.evaluate.evaluate_model`, written to ``OUT/fold-i/evaluation.json``), not
on the training loop's validation windows. ``OUT/cv.json`` holds each fold's mIoU and per-class
IoU and their mean and standard deviation.

Why the last checkpoint and not ``best.safetensors``: the best epoch is chosen by its score on
the fold's own validation images, so scoring it there again would pick the luckiest epoch on
the very images it is judged on, and the mean would flatter the recipe. The last checkpoint is
what the recipe gives without looking at them (early stopping, when on, still looks; a time
budget turns it off).

This module sits above training and jobs (it uses both; neither knows it). Every training option
applies to every fold. A time budget is shared: each fold gets the time left divided by the
folds left, so the whole cross-validation ends at about the budget. ``val_images`` cannot be
given with folds (the folds choose the validation images; ``val_fraction`` is not used).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from agriseg.errors import ConfigError
from agriseg.jobs.evaluate import evaluate_model
from agriseg.outputs import atomic_output
from agriseg.samples import fold_samples, pair_samples
from agriseg.training.config import TrainConfig, resolve_config
from agriseg.training.loop import train

log = logging.getLogger("agriseg")


def cross_validate(config: TrainConfig | str | os.PathLike | dict[str, Any],
                   out_dir: str | os.PathLike | None = None, *, folds: int,
                   resume: bool = False, progress: bool = False,
                   **overrides: Any) -> dict[str, Any]:
    """Train and score ``folds`` models, each validated on its own share of the images.

    Parameters
    ----------
    config, **overrides
        As for :func:`~agriseg.training.loop.train`.
    out_dir
        Where ``fold-1/`` ... ``fold-K/`` and ``cv.json`` go (default: the config's
        ``out_dir``).
    folds
        K, from 2 to the number of images.
    resume
        Continue each fold that has a saved state; start the others.
    progress
        Progress bars on stderr.

    Returns
    -------
    dict
        What ``cv.json`` holds: ``folds``, ``seed``, ``classes``, ``per_fold`` (fold number,
        run folder, validation and training images, epochs run, the best epoch and its
        windowed validation mIoU (for information), the scored (last) checkpoint and its
        whole-image ``miou``, ``pixel_accuracy``, ``ece`` and per-class ``iou``), ``mean``
        and ``std`` (``miou`` and per-class ``iou``; sample standard deviation over folds; a
        class whose IoU is undefined in a fold is left out there), ``seconds``.

    Raises
    ------
    AgrisegError
        Fewer than 2 folds or more folds than images, ``val_images`` given, or any error
        :func:`~agriseg.training.loop.train` raises, before the first fold trains.
    """
    t0 = time.perf_counter()
    cfg = resolve_config(config, overrides)
    if cfg.val_images:
        raise ConfigError("val_images and folds both choose the validation images; drop "
                          "val_images (with folds, each image validates in exactly one fold)")
    samples = pair_samples(cfg.images, cfg.labels, label_field=cfg.label_field, aoi=cfg.aoi)
    groups = fold_samples(samples, folds, seed=cfg.seed)
    out = Path(out_dir if out_dir is not None else cfg.out_dir)
    per_fold = []
    for i, val in enumerate(groups, start=1):
        fold_dir = out / f"fold-{i}"
        log.info("fold %d of %d: validating on %s", i, folds,
                 ", ".join(s.image.name for s in val))
        r = train(cfg, resume=resume and (fold_dir / "last.state.safetensors").is_file(),
                  progress=progress, val_images=[str(s.image) for s in val],
                  out_dir=str(fold_dir), budget_minutes=_fold_budget(cfg, t0, folds - i + 1))
        ev = evaluate_model([s.image for s in val], sorted({s.labels for s in val}),
                            model=r.last_checkpoint, label_field=cfg.label_field,
                            device=cfg.device, out_json=fold_dir / "evaluation.json",
                            overwrite=True, progress=progress)
        overall = ev["overall"]
        per_fold.append({
            "fold": i, "out_dir": str(fold_dir),
            "validation": [str(s.image) for s in val],
            "train": [str(s.image) for g in groups if g is not val for s in g],
            "best_epoch": r.best_epoch, "best_val_miou": r.best_miou,
            "epochs_run": r.epochs_run, "checkpoint": str(r.last_checkpoint),
            "miou": overall["miou"], "ece": overall["ece"],
            "pixel_accuracy": overall["pixel_accuracy"],
            "iou": dict(zip(cfg.classes, overall["iou"], strict=True))})
        log.info("fold %d: whole-image mIoU %s", i, _fmt(overall["miou"]))
    result = {"folds": folds, "seed": cfg.seed, "classes": list(cfg.classes),
              "per_fold": per_fold, **_summary(per_fold, cfg.classes),
              "seconds": time.perf_counter() - t0}
    with atomic_output(out / "cv.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _fold_budget(cfg: TrainConfig, t0: float, folds_left: int) -> float | None:
    """This fold's share of the time budget: what is left, divided by the folds left."""
    if not cfg.budget_minutes:
        return None
    left_s = 60 * cfg.budget_minutes - (time.perf_counter() - t0)
    return max(left_s / folds_left, 1.0) / 60


def _summary(per_fold: list[dict[str, Any]], classes: list[str]) -> dict[str, Any]:
    def stats(values: list[float | None]) -> tuple[float | None, float | None]:
        v = [x for x in values if x is not None and not math.isnan(x)]
        if not v:
            return None, None
        mean = sum(v) / len(v)
        std = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else None
        return mean, std

    miou = stats([f["miou"] for f in per_fold])
    iou = {c: stats([f["iou"][c] for f in per_fold]) for c in classes}
    return {"mean": {"miou": miou[0], "iou": {c: s[0] for c, s in iou.items()}},
            "std": {"miou": miou[1], "iou": {c: s[1] for c, s in iou.items()}}}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def format_mean_std(mean: float | None, std: float | None) -> str:
    """``0.8461 ± 0.0061`` (``-`` without a mean, the mean alone without a spread)."""
    return _fmt(mean) if std is None else f"{_fmt(mean)} ± {std:.4f}"


def format_cv_table(result: dict[str, Any]) -> str:
    """The per-fold and mean ± std table of a :func:`cross_validate` result."""
    classes = result["classes"]
    head = ["fold", "images", "mIoU", *(f"IoU {c}" for c in classes)]
    rows = [[str(f["fold"]), str(len(f["validation"])), _fmt(f["miou"]),
             *(_fmt(f["iou"][c]) for c in classes)] for f in result["per_fold"]]
    mean, std = result["mean"], result["std"]
    rows.append(["mean", "", format_mean_std(mean["miou"], std["miou"]),
                 *(format_mean_std(mean["iou"][c], std["iou"][c]) for c in classes)])
    widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True))
                     for r in [head, *rows])
