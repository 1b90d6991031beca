"""Channel-wise Cross Attention (CCA).
Wang et al., "UCTransNet: Rethinking the Skip Connections in U-Net from a Channel-wise
Perspective with Transformer", AAAI 2022.

In UCTransNet's decoder, each skip is gated channel by channel before it is concatenated with
the upsampled decoder feature ``g``, so the decoder picks the skip channels it needs and the
semantic gap between the two is narrowed. Both maps are averaged over space, each mean goes
through its own linear layer (to the skip's channels), the two are summed and a sigmoid gives
one weight per skip channel; the skip is scaled by them and passed through a ReLU:

    out = relu(skip * sigmoid(W_x GAP(skip) + b_x + W_g GAP(g) + b_g))

The reference code halves the sum before the sigmoid, which the linear layers absorb. ``g`` may
have any spatial size; the averages are plain means, so it exports to ONNX at any size.
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelCrossAttention(nn.Module):
    """``forward(skip, g)``: ``skip`` (``skip_channels``) scaled per channel by a gate from the
    global averages of ``skip`` and of the decoder feature ``g`` (``gate_channels``)."""

    def __init__(self, skip_channels: int, gate_channels: int) -> None:
        super().__init__()
        self.in_channels = self.out_channels = skip_channels
        self.gate_channels = gate_channels
        self.fc_skip = nn.Linear(skip_channels, skip_channels)
        self.fc_gate = nn.Linear(gate_channels, skip_channels)
        self.act = nn.ReLU()

    def gate(self, skip: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """The per-channel weights in ``(0, 1)``, ``(B, skip_channels, 1, 1)``."""
        logits = self.fc_skip(skip.mean(dim=(2, 3))) + self.fc_gate(g.mean(dim=(2, 3)))
        return torch.sigmoid(logits)[:, :, None, None]

    def forward(self, skip: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.act(skip * self.gate(skip, g))
