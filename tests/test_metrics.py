"""Confusion-matrix metrics against values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from agriseg.metrics import ConfusionMatrix, format_table

# rows = truth, columns = prediction
HAND = np.array([[5, 1, 0],
                 [2, 3, 1],
                 [0, 0, 4]])


def pixels_for(matrix, ignore_extra=True):
    """(pred, target) arrays with exactly ``matrix`` counts, plus pixels that must be ignored."""
    pred, target = [], []
    for t in range(matrix.shape[0]):
        for p in range(matrix.shape[1]):
            target += [t] * int(matrix[t, p])
            pred += [p] * int(matrix[t, p])
    if ignore_extra:
        target += [255, 255, 1, 0]  # unknown truth, or no-data prediction
        pred += [0, 2, 255, 255]
    order = np.random.default_rng(0).permutation(len(pred))
    rows = 4 if len(pred) % 4 == 0 else 1
    return np.array(pred)[order].reshape(rows, -1), np.array(target)[order].reshape(rows, -1)


def test_metrics_match_hand_computation():
    pred, target = pixels_for(HAND)
    m = ConfusionMatrix(3).update(pred, target).compute()
    assert m["confusion"] == HAND.tolist()
    # class 0: TP 5, FP 2, FN 1; class 1: TP 3, FP 1, FN 3; class 2: TP 4, FP 1, FN 0
    assert m["iou"] == pytest.approx([5 / 8, 3 / 7, 4 / 5])
    assert m["precision"] == pytest.approx([5 / 7, 3 / 4, 4 / 5])
    assert m["recall"] == pytest.approx([5 / 6, 3 / 6, 4 / 4])
    assert m["f1"] == pytest.approx([10 / 13, 6 / 10, 8 / 9])
    assert m["support"] == [6, 6, 4] and m["predicted"] == [7, 4, 5]
    assert m["miou"] == pytest.approx((5 / 8 + 3 / 7 + 4 / 5) / 3)
    assert m["mean_f1"] == pytest.approx((10 / 13 + 6 / 10 + 8 / 9) / 3)
    assert m["pixel_accuracy"] == pytest.approx(12 / 16)
    assert m["pixels"] == 16  # the 4 ignored pixels are not counted


def test_torch_input_and_merge_are_additive():
    pred, target = pixels_for(HAND)
    a = ConfusionMatrix(3).update(torch.from_numpy(pred[:2]), torch.from_numpy(target[:2]))
    b = ConfusionMatrix(3).update(pred[2:], target[2:].astype(np.uint8))
    assert a.merge(b).matrix.tolist() == HAND.tolist()
    with pytest.raises(ValueError, match="4-class"):
        a.merge(ConfusionMatrix(4))


def test_absent_classes_are_undefined_not_zero():
    # 4 classes: class 2 predicted but never true (IoU 0, counts), class 3 in neither (NaN)
    matrix = np.array([[3, 0, 1, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    pred, target = pixels_for(matrix, ignore_extra=False)
    m = ConfusionMatrix(4).update(pred, target).compute()
    assert m["iou"][:3] == pytest.approx([3 / 4, 1.0, 0.0])
    assert math.isnan(m["iou"][3]) and math.isnan(m["f1"][3])
    assert math.isnan(m["recall"][2]) and m["precision"][2] == 0.0
    assert m["miou"] == pytest.approx((3 / 4 + 1 + 0) / 3)
    empty = ConfusionMatrix(3).compute()
    assert math.isnan(empty["miou"]) and math.isnan(empty["pixel_accuracy"])
    assert empty["pixels"] == 0


def test_out_of_range_values_are_errors():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="target value 3 is not a class id 0..2"):
        cm.update(np.array([0, 1]), np.array([0, 3]))
    with pytest.raises(ValueError, match="shapes differ"):
        cm.update(np.zeros((2, 2)), np.zeros(4))
    assert cm.matrix.sum() == 0


def test_format_table_lists_classes_summary_and_matrix():
    pred, target = pixels_for(HAND)
    text = format_table(ConfusionMatrix(3).update(pred, target).compute(),
                        ["soil", "crop", "weed"])
    lines = text.splitlines()
    assert lines[0].split() == ["class", "IoU", "F1", "precision", "recall", "support"]
    assert lines[1].split() == ["soil", "0.6250", "0.7692", "0.7143", "0.8333", "6"]
    assert "mIoU 0.6179" in text and "pixel accuracy 0.7500" in text
    assert "rows = truth" in text
    assert lines[-1].split() == ["weed", "0", "0", "4"]
    nan_text = format_table(ConfusionMatrix(2).compute(), ["a", "b"])
    assert "mIoU -" in nan_text
