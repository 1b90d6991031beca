"""Segmentation metrics from a confusion matrix: IoU, F1, precision, recall, accuracy.

A confusion matrix is additive, so metrics over a whole field (or many) are exact however the
pixels were batched: update it strip by strip or window by window, ``merge`` the matrices of
several images or workers, and compute once. Rows are the truth, columns the prediction.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agriseg.constants import NODATA


def _to_numpy(a: Any) -> np.ndarray:
    if type(a).__module__.startswith("torch"):  # no torch import for numpy callers
        return a.detach().cpu().numpy()
    return np.asarray(a)


class ConfusionMatrix:
    """Accumulates pixel counts ``matrix[truth, prediction]`` for ``num_classes`` classes.

    Pixels whose truth *or* prediction is ``ignore_index`` are left out (unknown labels,
    image no-data). Any other value outside ``0..num_classes-1`` is an error.
    """

    def __init__(self, num_classes: int, ignore_index: int = NODATA) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: Any, target: Any) -> ConfusionMatrix:
        """Add the pixels of ``pred`` and ``target`` (same shape; numpy arrays or tensors)."""
        if type(pred).__module__.startswith("torch") and \
                type(target).__module__.startswith("torch"):
            return self._update_torch(pred, target)
        pred, target = _to_numpy(pred), _to_numpy(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction {pred.shape} and target {target.shape} shapes differ")
        pred = pred.ravel().astype(np.int64, copy=False)
        target = target.ravel().astype(np.int64, copy=False)
        keep = (target != self.ignore_index) & (pred != self.ignore_index)
        pred, target = pred[keep], target[keep]
        self._check_range(pred, "prediction")
        self._check_range(target, "target")
        n = self.num_classes
        self.matrix += np.bincount(target * n + pred, minlength=n * n).reshape(n, n)
        return self

    def _update_torch(self, pred: Any, target: Any) -> ConfusionMatrix:
        """The same on the tensors' device; only the small matrix comes back to the host."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} "
                             f"shapes differ")
        pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
        keep = (target != self.ignore_index) & (pred != self.ignore_index)
        pred, target = pred[keep], target[keep]
        self._check_range(pred, "prediction")
        self._check_range(target, "target")
        n = self.num_classes
        counts = (target * n + pred).bincount(minlength=n * n)
        self.matrix += counts.cpu().numpy().reshape(n, n)
        return self

    def _check_range(self, values: Any, what: str) -> None:
        if values.numel() if hasattr(values, "numel") else values.size:
            lo, hi = int(values.min()), int(values.max())
            if lo < 0 or hi >= self.num_classes:
                bad = lo if lo < 0 else hi
                raise ValueError(f"{what} value {bad} is not a class id 0..{self.num_classes - 1}"
                                 f" (or {self.ignore_index} = ignored)")

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts to this matrix (in place; returns ``self``)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge a {other.num_classes}-class confusion matrix into a "
                             f"{self.num_classes}-class one")
        self.matrix += other.matrix
        return self

    def reset(self) -> None:
        self.matrix[:] = 0

    def compute(self) -> dict[str, Any]:
        """Metrics as plain Python values (lists per class, indexed by class id).

        Per class: ``iou`` = TP / (TP + FP + FN), ``f1`` = 2TP / (2TP + FP + FN),
        ``precision`` = TP / (TP + FP), ``recall`` = TP / (TP + FN), ``support`` = true pixels,
        ``predicted`` = predicted pixels. A ratio with a zero denominator is NaN ("undefined"),
        never 0 or 1. ``miou`` and ``mean_f1`` average over the classes that occur in the truth
        *or* the prediction (the classes whose IoU is defined): a class absent from both says
        nothing about the model, while one that is predicted but absent counts as IoU 0.
        ``pixel_accuracy`` = correct / all counted pixels. All are NaN when no pixel counted.
        """
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        support, predicted = m.sum(axis=1), m.sum(axis=0)
        fp, fn = predicted - tp, support - tp
        total = m.sum()
        iou = _ratio(tp, tp + fp + fn)
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
        return {
            "iou": iou.tolist(),
            "f1": f1.tolist(),
            "precision": _ratio(tp, predicted).tolist(),
            "recall": _ratio(tp, support).tolist(),
            "support": [int(v) for v in support],
            "predicted": [int(v) for v in predicted],
            "miou": _nanmean(iou),
            "mean_f1": _nanmean(f1),
            "pixel_accuracy": float(tp.sum() / total) if total else math.nan,
            "pixels": int(total),
            "confusion": self.matrix.tolist(),
        }


class Calibration:
    """Expected calibration error (ECE) of the predicted class's confidence, accumulated.

    A model that says "90%" should be right 9 times in 10. Pixels are put in ``bins``
    equal-width confidence bins over [0, 1]; ECE = sum over bins of (pixels in the bin / all
    pixels) x |accuracy in the bin - mean confidence in the bin|. Only three numbers per bin
    are kept (pixels, summed confidence, correct pixels), so strips, images and workers add
    up exactly as a confusion matrix does. Pixels whose truth or prediction is
    ``ignore_index`` are left out.
    """

    def __init__(self, bins: int = 15, ignore_index: int = NODATA) -> None:
        self.bins, self.ignore_index = bins, ignore_index
        self.count = np.zeros(bins, dtype=np.int64)
        self.conf_sum = np.zeros(bins, dtype=np.float64)
        self.correct = np.zeros(bins, dtype=np.int64)

    def update(self, pred: Any, target: Any, confidence: Any) -> Calibration:
        """Add pixels: class ids ``pred``, ``target`` and ``confidence`` in [0, 1] (floats)
        or in percent 0-100 (integers, as the confidence raster stores it)."""
        pred, target, conf = (_to_numpy(a).ravel() for a in (pred, target, confidence))
        if not pred.shape == target.shape == conf.shape:
            raise ValueError(f"prediction {pred.shape}, target {target.shape} and confidence "
                             f"{conf.shape} shapes differ")
        keep = (target != self.ignore_index) & (pred != self.ignore_index)
        pred, target, conf = pred[keep], target[keep], conf[keep]
        conf = conf / 100.0 if np.issubdtype(conf.dtype, np.integer) else conf.astype(np.float64)
        b = np.clip((conf * self.bins).astype(np.int64), 0, self.bins - 1)  # 1.0: last bin
        self.count += np.bincount(b, minlength=self.bins)
        self.conf_sum += np.bincount(b, weights=conf, minlength=self.bins)
        self.correct += np.bincount(b, weights=pred == target, minlength=self.bins).astype(
            np.int64)
        return self

    def merge(self, other: Calibration) -> Calibration:
        if other.bins != self.bins:
            raise ValueError(f"cannot merge {other.bins} calibration bins into {self.bins}")
        self.count += other.count
        self.conf_sum += other.conf_sum
        self.correct += other.correct
        return self

    def ece(self) -> float:
        """The expected calibration error, NaN when no pixel was counted."""
        total = self.count.sum()
        if not total:
            return math.nan
        used = self.count > 0
        gap = np.abs(self.correct[used] - self.conf_sum[used])  # = n_b |acc_b - conf_b|
        return float(gap.sum() / total)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def format_table(metrics: dict[str, Any], class_names: list[str] | None = None) -> str:
    """A plain-text report of :meth:`ConfusionMatrix.compute`'s output (NaN/None shown as -)."""
    n = len(metrics["iou"])
    names = list(class_names) if class_names else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for {n} classes")
    w = max(8, *(len(s) for s in names))
    lines = [f"{'class':<{w}} {'IoU':>7} {'F1':>7} {'precision':>9} {'recall':>7} "
             f"{'support':>12}"]
    for i, name in enumerate(names):
        lines.append(f"{name:<{w}} {_fmt(metrics['iou'][i]):>7} {_fmt(metrics['f1'][i]):>7} "
                     f"{_fmt(metrics['precision'][i]):>9} {_fmt(metrics['recall'][i]):>7} "
                     f"{metrics['support'][i]:>12,}")
    lines.append("")
    lines.append(f"mIoU {_fmt(metrics['miou'])}   mean F1 {_fmt(metrics['mean_f1'])}   "
                 f"pixel accuracy {_fmt(metrics['pixel_accuracy'])}   "
                 f"({metrics['pixels']:,} pixels)")
    if metrics.get("ece") is not None:
        lines.append(f"expected calibration error of the confidence (ECE) "
                     f"{_fmt(metrics['ece'])}")
    lines.append("")
    lines.append("confusion matrix (rows = truth, columns = prediction):")
    cw = max(10, *(len(s) for s in names))
    lines.append(" " * w + "".join(f" {s:>{cw}}" for s in names))
    for name, row in zip(names, metrics["confusion"], strict=True):
        lines.append(f"{name:<{w}}" + "".join(f" {v:>{cw},}" for v in row))
    return "\n".join(lines)
