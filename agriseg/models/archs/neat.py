"""NEAT on an smp encoder: the stride 8, 16 and 32 features, upsampled to stride 8 and
concatenated, feed a :class:`~agriseg.models.modules.neat.GrowableHead` whose width and depth
(``head_width``, ``head_blocks``) grow during training; a grown checkpoint's card carries them.

The growth policy is part of the architecture's options, so a config in configs/models/ says
everything: the training loop grows the head (:meth:`NEATNet.grow`) when validation mIoU has
not improved for ``grow_patience`` epochs (and as many epochs have passed since the last
growth), at most ``grow_max_steps`` times, never past ``grow_max_params`` parameters for the
whole network. Growth alternates: widen the stream by ``grow_factor`` (rounded up to a multiple
of 8), then deepen it by one residual block; when the preferred step would pass the budget the
other is tried. Both steps are function-preserving, so training resumes from the same function.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F

from agriseg.models.archs.base import EncoderDecoder
from agriseg.models.modules.neat import GrowableHead


class NEATNet(EncoderDecoder):
    def __init__(self, encoder_name: str, in_channels: int, classes: int, head_width: int = 64,
                 head_blocks: int = 0, grow_patience: int = 2, grow_max_steps: int = 4,
                 grow_max_params: int | None = None, grow_factor: float = 1.5,
                 smp_weights: str | None = None) -> None:
        super().__init__(encoder_name, in_channels, 32, smp_weights)
        if grow_factor <= 1 or grow_patience < 0 or grow_max_steps < 0:
            raise ValueError("NEAT needs grow_factor > 1, grow_patience >= 0 and "
                             "grow_max_steps >= 0")
        self.grow_patience, self.grow_max_steps = grow_patience, grow_max_steps
        self.grow_max_params, self.grow_factor = grow_max_params, grow_factor
        self.head = GrowableHead(sum(self.encoder_channels[-3:]), classes, head_width,
                                 head_blocks)

    def grown_shape(self) -> dict[str, int]:
        """What to store in the card's ``arch`` so the checkpoint rebuilds at this size."""
        return self.head.shape()

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[-3].shape[-2:]
        levels = [features[-3]] + [F.interpolate(f, size=size, mode="bilinear",
                                                 align_corners=False) for f in features[-2:]]
        return self.head(torch.cat(levels, dim=1))

    def grow(self, step: int, seed: int) -> dict[str, Any] | None:
        """Growth number ``step`` (0, 1, ...): widen on even steps, deepen on odd ones, the
        other when the preferred one would pass ``grow_max_params``. Deterministic in
        ``(step, seed)`` and independent of the global RNG streams. Returns what was done
        (``op``, the new shape, ``params``), or None when no step fits the budget."""
        if step >= self.grow_max_steps:
            return None
        ops = ("widen", "deepen") if step % 2 == 0 else ("deepen", "widen")
        for op in ops:
            trial = copy.deepcopy(self.head)
            self._grow_step(trial, op, step, seed)
            params = self._params_with(trial)
            if self.grow_max_params is None or params <= self.grow_max_params:
                self._grow_step(self.head, op, step, seed)
                return {"op": op, **self.head.shape(), "params": params}
        return None

    def _grow_step(self, head: GrowableHead, op: str, step: int, seed: int) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed * 1009 + step)  # new block's init (CPU)
            if op == "deepen":
                head.deepen()
            else:
                g = torch.Generator().manual_seed(seed * 1009 + step)
                head.widen(8 * math.ceil(head.width * self.grow_factor / 8), generator=g)

    def _params_with(self, head: GrowableHead) -> int:
        rest = sum(p.numel() for n, p in self.named_parameters() if not n.startswith("head."))
        return rest + sum(p.numel() for p in head.parameters())
