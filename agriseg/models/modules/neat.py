"""NEAT, a decoder head that expands and transforms its own structure while it trains.
Our construction from Net2Net (Chen, Goodfellow & Shlens, "Net2Net", ICLR 2016); not a paper's.

The head is a residual stream of ``width`` channels: a 3x3 stem (conv, norm, ReLU), ``blocks``
residual blocks (``ReLU(x + norm(conv(ReLU(norm(conv(x))))))``) and a 1x1 classifier. It grows
by two function-preserving operations, so training continues from exactly the function it had:

- :meth:`GrowableHead.widen` (Net2WiderNet): new stream channels copy randomly chosen existing
  ones (their producing filters and norm parameters), and every layer that reads the stream
  divides the weights of a replicated channel by its number of copies, so sums are unchanged.
  Each block's inner channels are widened the same way, so every block keeps the stream's
  width and a grown head is rebuilt from its ``(width, blocks)`` alone.
- :meth:`GrowableHead.deepen` (Net2DeeperNet, residual form): a new block is inserted whose last
  norm starts at scale 0 and shift 0; it adds nothing, and the stream is non-negative (it
  leaves a ReLU), so the final ReLU changes nothing either. Its scale receives a gradient at
  once; the block's convolutions learn as soon as the scale moves.

:meth:`GrowableHead.shape` is stored in the model card's ``arch`` (``head_width``,
``head_blocks``) so a grown checkpoint rebuilds at its grown size. When and how much to grow
(a validation plateau, a parameter budget) is the training loop's decision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))
        return F.relu(x + y)


class GrowableHead(nn.Module):
    def __init__(self, in_channels: int, classes: int, width: int = 64, blocks: int = 0) -> None:
        super().__init__()
        self.in_channels, self.classes = in_channels, classes
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.stem_norm = nn.BatchNorm2d(width)
        self.blocks = nn.ModuleList(ResidualBlock(width) for _ in range(blocks))
        self.classifier = nn.Conv2d(width, classes, 1)

    @property
    def width(self) -> int:
        return self.stem.out_channels

    def shape(self) -> dict[str, int]:
        return {"head_width": self.width, "head_blocks": len(self.blocks)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_norm(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        return self.classifier(x)

    @torch.no_grad()
    def deepen(self) -> ResidualBlock:
        """Append a residual block that starts as the identity; returns it."""
        p = self.stem.weight
        block = ResidualBlock(self.width).to(device=p.device, dtype=p.dtype)
        nn.init.zeros_(block.norm2.weight)
        nn.init.zeros_(block.norm2.bias)
        block.train(self.training)
        self.blocks.append(block)
        return block

    @torch.no_grad()
    def widen(self, width: int, generator: torch.Generator | None = None) -> None:
        """Grow the stream to ``width`` channels without changing the function."""
        old = self.width
        if width <= old:
            raise ValueError(f"widen to more than {old} channels, got {width}")
        pick = torch.randint(0, old, (width - old,), generator=generator)
        mapping = torch.cat([torch.arange(old), pick])  # new channel -> the one it copies
        counts = torch.bincount(mapping, minlength=old).to(self.stem.weight.dtype)
        share = (1.0 / counts)[mapping]  # what each copy of a channel contributes
        # drawn on the CPU (the generator's device), applied where the weights are (CUDA)
        mapping, share = mapping.to(self.stem.weight.device), share.to(self.stem.weight.device)
        self.stem = _out_copy(self.stem, mapping)
        self.stem_norm = _norm_copy(self.stem_norm, mapping)
        for block in self.blocks:  # the stream and each block's inner channels alike
            block.conv1 = _out_copy(_in_split(block.conv1, mapping, share), mapping)
            block.norm1 = _norm_copy(block.norm1, mapping)
            block.conv2 = _out_copy(_in_split(block.conv2, mapping, share), mapping)
            block.norm2 = _norm_copy(block.norm2, mapping)
        self.classifier = _in_split(self.classifier, mapping, share)


def _like(conv: nn.Conv2d, in_channels: int, out_channels: int) -> nn.Conv2d:
    new = nn.Conv2d(in_channels, out_channels, conv.kernel_size, padding=conv.padding,
                    bias=conv.bias is not None)
    return new.to(device=conv.weight.device, dtype=conv.weight.dtype)


def _out_copy(conv: nn.Conv2d, mapping: torch.Tensor) -> nn.Conv2d:
    new = _like(conv, conv.in_channels, len(mapping))
    new.weight.copy_(conv.weight[mapping])
    if conv.bias is not None:
        new.bias.copy_(conv.bias[mapping])
    return new


def _in_split(conv: nn.Conv2d, mapping: torch.Tensor, share: torch.Tensor) -> nn.Conv2d:
    new = _like(conv, len(mapping), conv.out_channels)
    new.weight.copy_(conv.weight[:, mapping] * share.view(1, -1, 1, 1))
    if conv.bias is not None:
        new.bias.copy_(conv.bias)
    return new


def _norm_copy(norm: nn.BatchNorm2d, mapping: torch.Tensor) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(mapping), eps=norm.eps, momentum=norm.momentum).to(
        device=norm.weight.device, dtype=norm.weight.dtype)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(new, name).copy_(getattr(norm, name)[mapping])
    new.num_batches_tracked.copy_(norm.num_batches_tracked)
    new.train(norm.training)
    return new
