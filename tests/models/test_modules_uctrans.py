"""UCTransNet's CCT and CCA: attention probabilities over the concatenated channels, skips
unchanged when the reconstruction is zeroed, and the CCA gate's closed form."""

from __future__ import annotations

import math

import pytest
import torch

from agriseg.models.modules.cca import ChannelCrossAttention
from agriseg.models.modules.cct import CCTAttention, ChannelCrossTransformer

CHANNELS = (4, 6, 8, 10)


def _skips(batch: int = 2, grid: tuple[int, int] = (3, 5), seed: int = 0):
    """Skips at strides 2, 4, 8, 16 of a ``16 * grid`` input: a ``grid`` of tokens each."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, grid[0] * p, grid[1] * p, generator=g)
            for c, p in zip(CHANNELS, (8, 4, 2, 1), strict=True)]


def test_attention_rows_are_probabilities_over_all_levels_channels():
    cct = ChannelCrossTransformer(CHANNELS, num_layers=2, num_heads=3).eval()
    with torch.no_grad():
        outs, attention = cct(_skips(), return_attention=True)
    assert [o.shape for o in outs] == [s.shape for s in _skips()]
    assert len(attention) == 2
    for probs in attention:
        assert [p.shape for p in probs] == [(2, 3, c, sum(CHANNELS)) for c in CHANNELS]
        for p in probs:
            assert (p >= 0).all()
            torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]))


def test_attention_matches_its_definition_head_by_head():
    attn = CCTAttention((3, 5), num_heads=2)
    g = torch.Generator().manual_seed(2)
    queries = [torch.randn(2, 7, 3, generator=g), torch.randn(2, 7, 5, generator=g)]
    kv = torch.randn(2, 7, 8, generator=g)
    with torch.no_grad():
        outs, probs = attn(queries, kv)
        norm = torch.nn.InstanceNorm2d(1)
        for i, (x, c) in enumerate(zip(queries, (3, 5), strict=True)):
            contexts = []
            for h in range(2):
                wq = attn.query[i].weight[h * c:(h + 1) * c]
                wk, wv = (m.weight[h * 8:(h + 1) * 8] for m in (attn.key, attn.value))
                q, k, v = x @ wq.T, kv @ wk.T, kv @ wv.T  # tokens x channels
                scores = q.transpose(1, 2) @ k / math.sqrt(8)  # C_i x C
                p = norm(scores[:, None])[:, 0].softmax(-1)
                torch.testing.assert_close(probs[i][:, h], p, rtol=1e-4, atol=1e-5)
                contexts.append(p @ v.transpose(1, 2))  # C_i x tokens
            ref = (sum(contexts) / 2).transpose(1, 2) @ attn.proj[i].weight.T
            torch.testing.assert_close(outs[i], ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("train", [False, True])
def test_with_the_reconstruction_zeroed_the_skips_pass_through(train):
    cct = ChannelCrossTransformer(CHANNELS, num_layers=2, num_heads=2)
    with torch.no_grad():
        for rec in cct.reconstructs:
            rec[0].weight.zero_()
            rec[1].weight.zero_()
            rec[1].bias.zero_()
    cct.train(train)
    skips = _skips(grid=(2, 3))
    with torch.no_grad():
        outs = cct(skips)
    for o, s in zip(outs, skips, strict=True):
        torch.testing.assert_close(o, s, rtol=0, atol=0)


def test_a_fresh_cct_changes_the_skips_and_trains_at_batch_size_one():
    cct = ChannelCrossTransformer(CHANNELS, num_layers=1, num_heads=2).train()
    skips = [s.requires_grad_(True) for s in _skips(batch=1, grid=(3, 5))]
    outs = cct(skips)
    assert all(not torch.allclose(o, s) for o, s in zip(outs, skips, strict=True))
    sum(o.square().mean() for o in outs).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in cct.parameters())
    assert cct.blocks[0].attn.key.weight.grad.abs().sum() > 0
    assert all(s.grad.abs().sum() > 0 for s in skips)


def test_cct_refuses_mismatched_levels():
    with pytest.raises(ValueError):
        ChannelCrossTransformer(CHANNELS, patch_sizes=(4, 2, 1))


def test_cca_matches_its_closed_form():
    cca = ChannelCrossAttention(5, 7)
    g = torch.Generator().manual_seed(4)
    skip = torch.randn(2, 5, 6, 10, generator=g)
    dec = torch.randn(2, 7, 6, 10, generator=g)
    with torch.no_grad():
        out = cca(skip, dec)
        gap_x = skip.sum(dim=(2, 3)) / (6 * 10)
        gap_g = dec.sum(dim=(2, 3)) / (6 * 10)
        logits = (gap_x @ cca.fc_skip.weight.T + cca.fc_skip.bias
                  + gap_g @ cca.fc_gate.weight.T + cca.fc_gate.bias)
        ref = torch.clamp(skip * (1 / (1 + torch.exp(-logits)))[:, :, None, None], min=0)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_cca_gates_each_skip_channel_by_one_weight_in_zero_one():
    cca = ChannelCrossAttention(5, 3)
    skip = torch.rand(1, 5, 4, 4) + 0.1  # positive, so the ReLU keeps it
    dec = torch.randn(1, 3, 2, 2)  # any size: only its mean is used
    with torch.no_grad():
        ratio = cca(skip, dec) / skip
    assert ((ratio > 0) & (ratio < 1)).all()
    torch.testing.assert_close(ratio, ratio[:, :, :1, :1].expand_as(ratio))
