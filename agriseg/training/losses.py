"""Segmentation loss: weighted cross-entropy plus soft multi-class Dice, both ignoring 255.

Cross-entropy gives well-behaved per-pixel gradients; Dice (Milletari et al., "V-Net", 2016)
scores the overlap per class, so a weed class covering 1 % of the field counts as much as the
soil. Pixels labelled ``ignore_index`` (unknown, outside the labels, padding) contribute to
neither term.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agriseg.constants import NODATA
from agriseg.errors import ConfigError


class SegmentationLoss(nn.Module):
    """``ce_weight * CE + dice_weight * (1 - mean Dice)`` for logits ``(N, C, H, W)``.

    ``class_weights`` weight the cross-entropy term only (as ``torch``'s ``weight``: the mean is
    over the weights of the valid pixels). The Dice term is averaged over the classes *present
    in the batch's valid labels*: a class absent from the batch has an undefined Dice (0/0) that
    any smoothing constant would turn into an arbitrary 0 or 1; its false positives are still
    paid for, by cross-entropy and by the lower overlap of the classes that are present.
    After each call, :attr:`parts` holds the last ``{"ce", "dice"}`` values for logging.
    """

    def __init__(self, num_classes: int, ce_weight: float = 1.0, dice_weight: float = 1.0,
                 class_weights: Sequence[float] | None = None,
                 ignore_index: int = NODATA, smooth: float = 1.0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"a segmentation loss needs at least 2 classes, got {num_classes}")
        if ce_weight < 0 or dice_weight < 0 or ce_weight + dice_weight == 0:
            raise ConfigError(f"loss weights must be >= 0 and not both 0 (ce_weight="
                              f"{ce_weight}, dice_weight={dice_weight})")
        self.num_classes = num_classes
        self.ce_weight, self.dice_weight = float(ce_weight), float(dice_weight)
        self.ignore_index, self.smooth = ignore_index, float(smooth)
        weight = None
        if class_weights is not None:
            weight = torch.as_tensor([float(w) for w in class_weights], dtype=torch.float32)
            if weight.numel() != num_classes:
                raise ConfigError(f"{weight.numel()} class weights for {num_classes} classes; "
                                  f"give one weight per class")
            if (weight < 0).any() or not torch.isfinite(weight).all():
                raise ConfigError(f"class weights must be finite and >= 0, got {class_weights}")
        self.register_buffer("class_weights", weight)
        self._parts: dict[str, torch.Tensor] = {}

    @property
    def parts(self) -> dict[str, float]:
        """The last call's unweighted terms as floats (read lazily: no GPU sync per step)."""
        return {k: float(v) for k, v in self._parts.items()}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 4 or logits.shape[1] != self.num_classes:
            raise ValueError(f"expected logits (N, {self.num_classes}, H, W), got "
                             f"{tuple(logits.shape)}")
        if target.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f"target {tuple(target.shape)} does not match logits "
                             f"{tuple(logits.shape)}")
        target = target.long()
        valid = target != self.ignore_index
        zero = logits.sum() * 0.0  # keeps the graph when nothing is valid
        ce = dice = zero
        if valid.any():
            if self.ce_weight:
                ce = F.cross_entropy(logits.float(), target, weight=self.class_weights,
                                     ignore_index=self.ignore_index)
            if self.dice_weight:
                dice = self.dice_loss(logits, target, valid)
        self._parts = {"ce": ce.detach(), "dice": dice.detach()}
        return self.ce_weight * ce + self.dice_weight * dice

    def dice_loss(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
                  ) -> torch.Tensor:
        """``1 - mean soft Dice`` over the classes present in the valid pixels of ``target``."""
        probs = logits.float().softmax(dim=1) * valid.unsqueeze(1)
        onehot = F.one_hot(torch.where(valid, target, 0), self.num_classes)
        onehot = onehot.permute(0, 3, 1, 2).to(probs.dtype) * valid.unsqueeze(1)
        dims = (0, 2, 3)
        inter = (probs * onehot).sum(dims)
        support = onehot.sum(dims)
        dice = (2 * inter + self.smooth) / (probs.sum(dims) + support + self.smooth)
        present = support > 0
        return 1.0 - dice[present].mean()


def class_weights_from_counts(counts: Sequence[int] | np.ndarray, power: float = 0.5
                              ) -> list[float]:
    """Class weights ``(1 / frequency) ** power``, scaled so present classes average 1.

    ``power=1`` is inverse-frequency (median-frequency balancing up to a constant factor, which
    the scaling removes); the default 0.5 (inverse square root) boosts rare classes less, which
    is steadier when a class is very rare. Classes with no pixels get the largest weight of the
    present ones (they have no pixels to weight now, but may in another sample).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size < 2 or (counts < 0).any():
        raise ConfigError(f"class counts must be >= 0, one per class, got {counts.tolist()}")
    present = counts > 0
    if not present.any():
        raise ConfigError("no labelled pixels to compute class weights from")
    freq = counts / counts.sum()
    weights = np.zeros_like(freq)
    weights[present] = freq[present] ** -power
    weights /= weights[present].mean()
    weights[~present] = weights[present].max()
    return [float(w) for w in weights]
