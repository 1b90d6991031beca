"""Cross-entropy + Dice loss: matches torch, ignores 255, weights matter, gradients flow."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from agriseg.errors import ConfigError
from agriseg.training.losses import SegmentationLoss, class_weights_from_counts


def batch(seed=0, n=2, c=3, h=8, w=9, ignore_frac=0.2):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g)
    target = torch.randint(0, c, (n, h, w), generator=g)
    target[torch.rand(n, h, w, generator=g) < ignore_frac] = 255
    return logits, target


def test_ce_part_equals_torch_cross_entropy_with_ignore_index():
    logits, target = batch()
    loss = SegmentationLoss(3, ce_weight=1.0, dice_weight=0.0)
    value = loss(logits, target)
    expected = F.cross_entropy(logits, target, ignore_index=255)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.parts["ce"] == pytest.approx(expected.item(), rel=1e-6)
    assert (target == 255).any()


def test_class_weights_match_torch_and_change_the_loss():
    logits, target = batch(seed=1)
    weights = [0.2, 1.0, 3.0]
    weighted = SegmentationLoss(3, dice_weight=0.0, class_weights=weights)(logits, target)
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weights), ignore_index=255)
    plain = SegmentationLoss(3, dice_weight=0.0)(logits, target)
    assert weighted.item() == pytest.approx(expected.item(), rel=1e-6)
    assert abs(weighted.item() - plain.item()) > 1e-3


def test_dice_is_zero_for_a_perfect_prediction_and_ignores_unknown_pixels():
    _, target = batch(seed=2)
    onehot = F.one_hot(torch.where(target == 255, 0, target), 3).permute(0, 3, 1, 2).float()
    logits = onehot * 40.0  # softmax is one-hot to float precision
    wrong = (target == 255)
    logits[:, 2][wrong] = 80.0  # confidently "weed" where the label is unknown: must not count
    loss = SegmentationLoss(3, ce_weight=0.0, dice_weight=1.0)
    assert loss(logits, target).item() == pytest.approx(0.0, abs=1e-5)
    assert loss.parts["dice"] == pytest.approx(0.0, abs=1e-5)
    target_known = torch.where(wrong, 0, target)  # the same pixels labelled: now Dice > 0
    assert loss(logits, target_known).item() > 0.05


def test_dice_matches_a_hand_computation_over_present_classes():
    # one image, 1x4 pixels, class 2 absent from the labels
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    logits = probs.log().T.reshape(1, 3, 1, 4)
    target = torch.tensor([[[0, 0, 1, 255]]])
    valid = probs[:3]
    inter = [0.7 + 0.6, 0.8]
    card = [valid[:, 0].sum() + 2, valid[:, 1].sum() + 1]
    dice = [(2 * i + 1) / (c + 1) for i, c in zip(inter, card, strict=True)]
    expected = 1 - (dice[0] + dice[1]) / 2
    got = SegmentationLoss(3, ce_weight=0.0)(logits, target)
    assert got.item() == pytest.approx(float(expected), rel=1e-5)


def test_combined_loss_is_weighted_sum_and_backpropagates():
    logits, target = batch(seed=3)
    logits.requires_grad_(True)
    loss = SegmentationLoss(3, ce_weight=0.5, dice_weight=2.0)
    value = loss(logits, target)
    parts = loss.parts
    assert value.item() == pytest.approx(0.5 * parts["ce"] + 2.0 * parts["dice"], rel=1e-6)
    value.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert torch.all(logits.grad.permute(0, 2, 3, 1)[target == 255] == 0)


def test_all_pixels_unknown_gives_zero_not_nan():
    logits, target = batch()
    logits.requires_grad_(True)
    value = SegmentationLoss(3)(logits, torch.full_like(target, 255))
    assert value.item() == 0.0
    value.backward()  # still part of the graph


def test_validation_errors():
    with pytest.raises(ConfigError, match="2 class weights for 3 classes"):
        SegmentationLoss(3, class_weights=[1.0, 2.0])
    with pytest.raises(ConfigError, match="not both 0"):
        SegmentationLoss(3, ce_weight=0, dice_weight=0)
    with pytest.raises(ValueError, match="expected logits"):
        SegmentationLoss(3)(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))


def test_class_weights_from_counts():
    w = class_weights_from_counts([900, 100, 0, 25], power=0.5)
    present = np.array([w[0], w[1], w[3]])
    assert present.mean() == pytest.approx(1.0)
    # inverse square root of frequency: 900 -> 1/30, 100 -> 1/10, 25 -> 1/5 (ratios 1:3:6)
    assert w[1] / w[0] == pytest.approx(3.0) and w[3] / w[0] == pytest.approx(6.0)
    assert w[2] == pytest.approx(max(present))
    inv = class_weights_from_counts([300, 100], power=1.0)
    assert inv[1] / inv[0] == pytest.approx(3.0)
    with pytest.raises(ConfigError, match="no labelled pixels"):
        class_weights_from_counts([0, 0])
