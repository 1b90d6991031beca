"""Bilateral guided aggregation (BiSeNet V2): each gate, closed, removes exactly its path."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from block_checks import eval_bn, randomize

from agriseg.models.modules.bga import BilateralGuidedAggregation


def _randomized(channels: int = 6) -> BilateralGuidedAggregation:
    torch.manual_seed(0)
    return randomize(BilateralGuidedAggregation(channels).eval())


def _inputs(channels: int = 6, n: int = 2, h: int = 12, w: int = 20):
    g = torch.Generator().manual_seed(5)
    return (torch.randn(n, channels, h, w, generator=g),             # detail, stride 8
            torch.randn(n, channels, h // 4, w // 4, generator=g))   # semantic, stride 32


def _zero_out(path: torch.nn.Sequential) -> None:
    """Make a path's features zero: zero its norms' affine parameters and any trailing conv."""
    with torch.no_grad():
        for m in path:
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.zero_()
                m.bias.zero_()
        if isinstance(path[-1], torch.nn.Conv2d):
            path[-1].weight.zero_()


def test_output_is_at_the_detail_stride():
    bga = BilateralGuidedAggregation(8)
    detail, semantic = _inputs(8, h=24, w=40)
    out = bga.train()(detail, semantic)
    assert out.shape == (2, 8, 24, 40)
    assert bga.fine_gate(detail, semantic).shape == (2, 8, 24, 40)
    assert bga.coarse_gate(semantic).shape == (2, 8, 6, 10)
    assert bga.train()(*_inputs(8, n=1)).shape == (1, 8, 12, 20)  # batch 1 trains


def test_closing_the_fine_gate_removes_the_detail_kept_at_stride_8():
    bga = _randomized()
    detail, semantic = _inputs()
    with torch.no_grad():
        closed = bga(detail, semantic, fine_gate=0.0)
        opened = bga(detail, semantic)
        # the coarse path alone, computed from the submodules
        coarse = bga.detail_down(detail) * torch.sigmoid(bga.semantic_keep(semantic))
        alone = bga.fuse(F.interpolate(coarse, size=detail.shape[-2:], mode="bilinear",
                                           align_corners=False))
        _zero_out(bga.detail_keep)
        zeroed = bga(detail, semantic)
    torch.testing.assert_close(closed, alone)
    torch.testing.assert_close(closed, zeroed)
    assert not torch.allclose(closed, opened, atol=1e-3)


def test_closing_the_coarse_gate_removes_the_detail_brought_to_stride_32():
    bga = _randomized()
    detail, semantic = _inputs()
    with torch.no_grad():
        closed = bga(detail, semantic, coarse_gate=torch.zeros(1, 6, 1, 1))
        opened = bga(detail, semantic)
        fine = bga.detail_keep(detail) * bga.fine_gate(detail, semantic)
        alone = bga.fuse(fine)
        _zero_out(bga.detail_down)
        zeroed = bga(detail, semantic)
    torch.testing.assert_close(closed, alone)
    torch.testing.assert_close(closed, zeroed)
    assert not torch.allclose(closed, opened, atol=1e-3)


def test_the_gates_are_the_sigmoids_of_the_semantic_features():
    bga = _randomized()
    detail, semantic = _inputs()
    with torch.no_grad():
        default = bga(detail, semantic)
        given = bga(detail, semantic, fine_gate=bga.fine_gate(detail, semantic),
                    coarse_gate=bga.coarse_gate(semantic))
        fine_gate, coarse_gate = bga.fine_gate(detail, semantic), bga.coarse_gate(semantic)
    torch.testing.assert_close(default, given)
    assert fine_gate.min() > 0 and fine_gate.max() < 1
    assert coarse_gate.min() > 0 and coarse_gate.max() < 1
    torch.testing.assert_close(coarse_gate, torch.sigmoid(bga.semantic_keep(semantic)))


def test_bga_equals_a_direct_computation_of_fig_6():
    bga = _randomized()
    detail, semantic = _inputs()
    c = detail.shape[1]

    def sep(x, seq):  # 3x3 depthwise + norm + 1x1
        y = eval_bn(F.conv2d(x, seq[0].weight, padding=1, groups=c), seq[1])
        return F.conv2d(y, seq[2].weight)

    def up(x):
        return F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)

    down = eval_bn(F.conv2d(detail, bga.detail_down[0].weight, stride=2, padding=1),
                    bga.detail_down[1])
    down = F.avg_pool2d(down, 3, stride=2, padding=1)
    sem_up = eval_bn(F.conv2d(semantic, bga.semantic_up[0].weight, padding=1),
                      bga.semantic_up[1])
    left = sep(detail, bga.detail_keep) * torch.sigmoid(up(sem_up))
    right = down * torch.sigmoid(sep(semantic, bga.semantic_keep))
    fused = F.conv2d(left + up(right), bga.fuse[0].weight, padding=1)
    ref = F.relu(eval_bn(fused, bga.fuse[1]))
    with torch.no_grad():
        torch.testing.assert_close(bga(detail, semantic), ref, rtol=1e-5, atol=1e-5)
