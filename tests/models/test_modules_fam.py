"""The Flow Alignment Module: bilinear upsampling at zero flow, a shift by the flow in fine-grid
pixels, and a flow convolution that learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from agriseg.models.modules.fam import FlowAlignment


def _inputs(ratio: int, channels: int = 6, size: tuple[int, int] = (24, 40)):
    g = torch.Generator().manual_seed(0)
    fine = torch.randn(2, channels, *size, generator=g)
    coarse = torch.randn(2, channels, size[0] // ratio, size[1] // ratio, generator=g)
    up = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
    return fine, coarse, up


@pytest.mark.parametrize("ratio", [2, 4])
def test_a_fresh_fam_is_bilinear_upsampling(ratio):
    fam = FlowAlignment(6, 3)
    fine, coarse, up = _inputs(ratio)
    with torch.no_grad():
        assert fam.flow(fine, coarse).abs().max() == 0
        out = fam(fine, coarse)
    # the same positions; grid_sample and interpolate round the source coordinate differently
    torch.testing.assert_close(out, up, rtol=0, atol=5e-6)


@pytest.mark.parametrize("ratio", [2, 4])
@pytest.mark.parametrize("dx, dy", [(2, 0), (-2, 0), (0, 3)])
def test_a_constant_flow_shifts_by_fine_grid_pixels(ratio, dx, dy):
    fam = FlowAlignment(6, 3)
    with torch.no_grad():
        fam.flow_conv.bias.copy_(torch.tensor([float(dx), float(dy)]))
    fine, coarse, up = _inputs(ratio)
    with torch.no_grad():
        out = fam(fine, coarse)
    h, w = up.shape[-2:]
    # output pixel (i, j) is the upsampled map's pixel (i + dy, j + dx), where that exists
    rows, cols = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
    shifted = up[:, :, max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
    torch.testing.assert_close(out[:, :, rows, cols], shifted, rtol=0, atol=5e-6)
    assert not torch.allclose(out, up, atol=1e-2)


def test_gradient_reaches_the_flow_conv_and_then_the_reductions():
    fam = FlowAlignment(6, 3)
    fine, coarse, _ = _inputs(2)
    coarse.requires_grad_(True)
    fam(fine, coarse).square().mean().backward()
    assert fam.flow_conv.weight.grad.abs().sum() > 0 and fam.flow_conv.bias.grad.abs().sum() > 0
    assert coarse.grad.abs().sum() > 0
    # the reductions only feed the flow: zero flow weights pass them no gradient until trained
    assert fam.reduce_fine.weight.grad.abs().sum() == 0
    fam.zero_grad()
    with torch.no_grad():
        fam.flow_conv.weight.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(1))
    fam(fine, coarse).square().mean().backward()
    assert fam.reduce_fine.weight.grad.abs().sum() > 0
    assert fam.reduce_coarse.weight.grad.abs().sum() > 0


def test_bf16_autocast_keeps_a_float32_grid():
    fam = FlowAlignment(6, 3)
    with torch.no_grad():
        fam.flow_conv.bias.copy_(torch.tensor([0.5, -0.25]))
    fine, coarse, _ = _inputs(2)
    with torch.no_grad():
        ref = fam(fine, coarse)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = fam(fine, coarse)
    torch.testing.assert_close(low.float(), ref, rtol=0, atol=1e-5)
