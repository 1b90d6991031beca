"""Channel-wise Cross fusion Transformer (CCT).
Wang et al., "UCTransNet: Rethinking the Skip Connections in U-Net from a Channel-wise
Perspective with Transformer", AAAI 2022.

U-Net's skips carry each encoder level to its own decoder level only; the CCT lets every level
see the others first. Each of the skip levels (``channels[i]`` channels) is cut into patches
by a ``patch_sizes[i]``-strided convolution that keeps its channels; the patch sizes make the
token grids of all levels equal (``8, 4, 2, 1`` for skips at strides 2, 4, 8, 16: one token per
16 x 16 input pixels), so each level becomes ``N`` tokens of its ``C_i`` channels, ``N`` being
whatever the input size gives.

The attention is over *channels*, not tokens: each channel is a vector of its ``N`` token values.
Per head, level ``i``'s queries ``Q_i = X_i W_q`` (``C_i`` of them) are compared with keys
``K = X W_k`` from the concatenation ``X`` of all levels (``C = sum(C_i)`` channels, layer-
normed together): the similarity map ``Q_i^T K / sqrt(C)`` (``C_i x C``) is instance-normalized
(zero mean and unit variance over each map) and a softmax over the concatenated channel axis
gives the attention probabilities; each query channel becomes their mix of the value channels
``V = X W_v``. The heads are averaged, as in the paper, and projected back to ``C_i``. Each
level then has a pre-norm residual MLP (ratio ``mlp_ratio``, GELU), per token over channels.

A final LayerNorm and a reconstruction (``1x1 conv -> norm -> act``, then nearest upsampling to
the skip's size) turn the tokens back into a map that is *added* to the original skip: with the
reconstruction's output zeroed the skips pass through unchanged. The reconstruction convolves
before upsampling, the reverse of the paper's order: nearest upsampling commutes with the
pointwise convolution, norm and activation, so the result is the same at a fraction of the cost.

The reference's learned position embeddings are left out: they fix the token count (the input
size), and channel attention is blind to token order anyway (a channel similarity sums over the
tokens), so they act only as a per-token bias. Without them any input whose sides are multiples
of the largest patch's stride works, square or not. It exports to ONNX with dynamic sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from agriseg.models.modules.common import ActLayer, ConvNormAct, NormLayer, relu


def instance_norm_map(scores: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean, unit (biased) variance over each ``(..., rows, cols)`` map, in float32 or
    wider: ``nn.InstanceNorm2d(heads)`` without affine on ``(N, heads, rows, cols)``."""
    s = scores.to(torch.promote_types(scores.dtype, torch.float32))
    mean = s.mean(dim=(-2, -1), keepdim=True)
    var = (s - mean).square().mean(dim=(-2, -1), keepdim=True)
    return (s - mean) / torch.sqrt(var + eps)


class CCTAttention(nn.Module):
    """Multi-head channel-wise cross attention: ``forward(queries, kv)`` with ``queries[i]``
    ``(B, N, channels[i])`` and ``kv`` ``(B, N, sum(channels))``; returns each level's
    ``(B, N, channels[i])`` output and its attention probabilities ``(B, heads, C_i, C)``
    (rows sum to one)."""

    def __init__(self, channels: Sequence[int], num_heads: int = 4) -> None:
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.num_heads = num_heads
        total = sum(self.channels)
        self.kv_channels = total
        self.query = nn.ModuleList(nn.Linear(c, num_heads * c, bias=False)
                                   for c in self.channels)
        self.key = nn.Linear(total, num_heads * total, bias=False)
        self.value = nn.Linear(total, num_heads * total, bias=False)
        self.proj = nn.ModuleList(nn.Linear(c, c, bias=False) for c in self.channels)

    def forward(self, queries: Sequence[torch.Tensor], kv: torch.Tensor
                ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        heads, total = self.num_heads, self.kv_channels
        key = self.key(kv).unflatten(-1, (heads, total)).permute(0, 2, 1, 3)  # B, h, N, C
        value = self.value(kv).unflatten(-1, (heads, total)).permute(0, 2, 3, 1)  # B, h, C, N
        outs, probs = [], []
        for x, c, query, proj in zip(queries, self.channels, self.query, self.proj, strict=True):
            q = query(x).unflatten(-1, (heads, c)).permute(0, 2, 3, 1)  # B, h, C_i, N
            scores = q @ key / math.sqrt(total)  # B, h, C_i, C
            p = instance_norm_map(scores).softmax(dim=-1).to(value.dtype)
            context = (p @ value).mean(dim=1)  # B, C_i, N: the heads averaged
            outs.append(proj(context.transpose(1, 2)))
            probs.append(p)
        return outs, probs


class CCTMlp(nn.Sequential):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))


class CCTBlock(nn.Module):
    """One transformer layer over all levels' tokens: pre-norm channel cross attention and a
    pre-norm MLP per level, each residual."""

    def __init__(self, channels: Sequence[int], num_heads: int = 4,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.attn_norms = nn.ModuleList(nn.LayerNorm(c) for c in self.channels)
        self.kv_norm = nn.LayerNorm(sum(self.channels))
        self.attn = CCTAttention(self.channels, num_heads)
        self.mlp_norms = nn.ModuleList(nn.LayerNorm(c) for c in self.channels)
        self.mlps = nn.ModuleList(CCTMlp(c, max(1, round(c * mlp_ratio))) for c in self.channels)

    def forward(self, tokens: Sequence[torch.Tensor]
                ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        kv = self.kv_norm(torch.cat(list(tokens), dim=-1))
        attended, probs = self.attn([n(t) for n, t in zip(self.attn_norms, tokens, strict=True)],
                                    kv)
        tokens = [t + a for t, a in zip(tokens, attended, strict=True)]
        tokens = [t + mlp(norm(t))
                  for t, norm, mlp in zip(tokens, self.mlp_norms, self.mlps, strict=True)]
        return tokens, probs


class ChannelCrossTransformer(nn.Module):
    """``forward(skips)``: the skips (``channels[i]`` channels each, level ``i``'s side a
    multiple of ``patch_sizes[i]``, all giving the same token grid), each plus its reconstructed
    transformer output. With ``return_attention=True`` it also returns the attention
    probabilities: one list per layer, ``(B, heads, channels[i], sum(channels))`` per level."""

    def __init__(self, channels: Sequence[int], patch_sizes: Sequence[int] = (8, 4, 2, 1),
                 num_layers: int = 4, num_heads: int = 4, mlp_ratio: float = 4.0,
                 norm_layer: NormLayer = nn.BatchNorm2d, act_layer: ActLayer = relu) -> None:
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.patch_sizes = tuple(int(p) for p in patch_sizes)
        if len(self.channels) != len(self.patch_sizes):
            raise ValueError(f"CCT needs one patch size per level, got {len(self.channels)} "
                             f"levels and patch sizes {self.patch_sizes}")
        if min(self.channels) < 1 or min(self.patch_sizes) < 1 or num_layers < 1 \
                or num_heads < 1:
            raise ValueError("CCT needs positive channels, patch sizes, layers and heads, got "
                             f"{self.channels}, {self.patch_sizes}, {num_layers}, {num_heads}")
        self.in_channels = self.out_channels = self.channels
        self.embeds = nn.ModuleList(nn.Conv2d(c, c, p, stride=p)
                                    for c, p in zip(self.channels, self.patch_sizes, strict=True))
        self.blocks = nn.ModuleList(CCTBlock(self.channels, num_heads, mlp_ratio)
                                    for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(c) for c in self.channels)
        self.reconstructs = nn.ModuleList(
            ConvNormAct(c, c, 1, norm_layer=norm_layer, act_layer=act_layer)
            for c in self.channels)

    def forward(self, skips: Sequence[torch.Tensor], return_attention: bool = False
                ) -> list[torch.Tensor] | tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        grids = [embed(s) for embed, s in zip(self.embeds, skips, strict=True)]
        tokens = [g.flatten(2).transpose(1, 2) for g in grids]  # B, N, C_i
        attention = []
        for block in self.blocks:
            tokens, probs = block(tokens)
            attention.append(probs)
        outs = []
        for t, g, s, norm, rec in zip(tokens, grids, skips, self.norms, self.reconstructs,
                                      strict=True):
            fused = rec(norm(t).transpose(1, 2).reshape_as(g))
            outs.append(s + F.interpolate(fused, size=s.shape[-2:], mode="nearest"))
        return (outs, attention) if return_attention else outs
