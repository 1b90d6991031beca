"""The multiscale context blocks: each checked against its defining property."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from block_checks import eval_bn, randomize, reach

from agriseg.models.modules import ASPP, DenseASPP
from agriseg.models.modules.aspp import aspp_rates


def test_aspp_equals_a_direct_computation():
    aspp = ASPP(8, 6, rates=(2, 4, 6)).eval()
    randomize(aspp)
    x = torch.randn(2, 8, 20, 28)
    outs = []
    for branch, rate in zip(aspp.branches, (1, 2, 4, 6), strict=True):
        conv, bn = branch[0], branch[1]
        pad = 0 if rate == 1 else rate
        y = F.conv2d(x, conv.weight, padding=pad, dilation=rate if pad else 1)
        outs.append(F.relu(eval_bn(y, bn)))
    pool_conv, gn = aspp.pool[0], aspp.pool[1]
    p = F.conv2d(x.mean(dim=(2, 3), keepdim=True), pool_conv.weight)
    p = F.relu(F.group_norm(p, gn.num_groups, gn.weight, gn.bias, gn.eps))
    outs.append(p.expand(-1, -1, 20, 28))
    proj_conv, proj_bn = aspp.project[0][0], aspp.project[0][1]
    ref = F.relu(eval_bn(F.conv2d(torch.cat(outs, 1), proj_conv.weight), proj_bn))
    with torch.no_grad():
        torch.testing.assert_close(aspp(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rate", [2, 5])
def test_an_aspp_branch_sees_exactly_its_rate(rate):
    aspp = ASPP(4, 4, rates=(rate, 7, 9)).eval()
    _positive(aspp)  # random weights could leave the ReLU closed at that pixel (flaky)
    x = torch.rand(1, 4, 31, 31) + 0.5
    offsets = reach(aspp.branches[1], x, (15, 15))
    assert offsets == {(dy, dx) for dy in (-rate, 0, rate) for dx in (-rate, 0, rate)}


def test_aspp_rates_follow_the_output_stride_and_train_at_batch_size_one():
    assert aspp_rates(16) == (6, 12, 18) and aspp_rates(8) == (12, 24, 36)
    aspp = ASPP(16, 8).train()
    out = aspp(torch.randn(1, 16, 9, 11))  # BatchNorm would refuse the 1x1 pooled map
    assert out.shape == (1, 8, 9, 11)


def _positive(module):
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.constant_(m.weight, 1.0 / m.weight[0].numel())


def test_dense_aspp_grows_by_the_growth_rate_and_reaches_the_cascade_sum():
    block = DenseASPP(12, growth=5, bottleneck=7).eval()
    assert [layer.in_channels for layer in block.layers] == [12, 17, 22, 27, 32]
    assert block.out_channels == 12 + 5 * 5
    assert block.receptive_field == 1 + 2 * (3 + 6 + 12 + 18 + 24) == 127
    _positive(block)
    x = torch.rand(1, 12, 151, 151) + 0.5
    offsets = reach(block.layers[-1].body, torch.cat(_features_before_last(block, x), 1),
                     (75, 75))
    last = block.layers[-1].rate
    assert max(abs(dy) for dy, _ in offsets) == last  # one layer alone: its own rate
    offsets = reach(lambda t: block(t)[:, -block.growth:], x, (75, 75))
    assert max(abs(dy) for dy, _ in offsets) == 63  # the cascade: 3 + 6 + 12 + 18 + 24
    assert max(abs(dx) for _, dx in offsets) == 63


def _features_before_last(block, x):
    feats = [x]
    with torch.no_grad():
        for layer in block.layers[:-1]:
            feats.append(layer(torch.cat(feats, 1)))
    return feats
