"""PointRend: importance sampling concentrates on boundaries, an identity point head is bilinear
upsampling, a subdivision step changes at most N pixels, and the point loss trains the head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from agriseg.models.modules.point_rend import (
    PointHead,
    point_sample,
    sample_training_points,
    subdivision_points,
    subdivision_step,
    uncertainty,
)


def _two_regions(height: int = 32, width: int = 48, boundary: int = 20) -> torch.Tensor:
    """Coarse logits (1, 2, H, W): class 1 right of column ``boundary``, confident far from it."""
    cols = torch.arange(width, dtype=torch.float32) + 0.5 - boundary
    margin = (cols / 2).clamp(-4, 4).expand(height, width)
    return torch.stack([-margin, margin]).unsqueeze(0)


def _identity_head(fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    return coarse


def test_point_sample_reads_pixel_centres_and_matches_interpolate_at_the_edges():
    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    idx, centres = subdivision_points(x, 35)  # every pixel
    got = point_sample(x, centres)
    want = torch.gather(x.flatten(2), 2, idx.unsqueeze(1).expand(-1, 3, -1))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    idx, fine_centres = subdivision_points(up, 10 * 14)
    want = torch.gather(up.flatten(2), 2, idx.unsqueeze(1).expand(-1, 3, -1))
    torch.testing.assert_close(point_sample(x, fine_centres), want, rtol=0, atol=5e-6)


def test_uncertainty_is_minus_the_top_two_margin():
    logits = torch.tensor([[3.0, 1.0, 2.5], [0.0, 0.0, -1.0]]).T.reshape(1, 3, 2, 1)
    torch.testing.assert_close(uncertainty(logits).flatten(), torch.tensor([-0.5, 0.0]))


def test_training_points_concentrate_on_the_boundary():
    logits = _two_regions()
    width, boundary, n = logits.shape[-1], 20, 1000
    points = sample_training_points(logits, n, generator=torch.Generator().manual_seed(0))
    assert points.shape == (1, n, 2) and (points >= 0).all() and (points <= 1).all()
    dist = (points[0, :, 0] * width - boundary).abs()  # pixels from the boundary
    importance, coverage = dist[:750], dist[750:]
    # the 750 importance points are the most uncertain quarter of 3000 uniform candidates:
    # nearly all within 6 pixels (a quarter of the map), half within 3 (uniform: 1/8)
    assert (importance <= 6).float().mean() > 0.85
    assert (importance <= 3).float().mean() > 0.4 > 3 * 6 / width
    # the 250 coverage points are uniform: about the band's share
    assert abs((coverage <= 3).float().mean() - 6 / width) < 0.06


def test_subdivision_points_are_the_most_uncertain_pixels():
    logits = _two_regions()
    for n, band in ((64, {19, 20}), (128, {18, 19, 20, 21})):  # 32 rows: 2 or 4 columns
        idx, points = subdivision_points(logits, n)
        cols, rows = idx[0] % logits.shape[-1], idx[0] // logits.shape[-1]
        assert set(cols.tolist()) == band and len(set(idx[0].tolist())) == n
        torch.testing.assert_close(points[0, :, 0] * logits.shape[-1], cols.float() + 0.5)
        torch.testing.assert_close(points[0, :, 1] * logits.shape[-2], rows.float() + 0.5)


def test_an_identity_point_head_is_bilinear_upsampling():
    g = torch.Generator().manual_seed(1)
    coarse, fine = torch.randn(2, 4, 6, 10, generator=g), torch.randn(2, 8, 24, 40, generator=g)
    # one step (stride 8 -> 4): the replaced points are the upsampled map's own values
    for n in (1, 17, 120, 240):
        out = subdivision_step(coarse, coarse, fine, _identity_head, n)
        want = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
        torch.testing.assert_close(out, want, rtol=0, atol=5e-6)
    # two steps (16 -> 4) re-predicting every pixel: bilinear from the coarse map directly
    out = subdivision_step(subdivision_step(coarse, coarse, fine, _identity_head, 10**6),
                           coarse, fine, _identity_head, 10**6)
    want = F.interpolate(coarse, scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, want, rtol=0, atol=5e-6)


@pytest.mark.parametrize("n", [1, 20, 100])
def test_each_subdivision_step_changes_at_most_n_pixels(n):
    g = torch.Generator().manual_seed(2)
    coarse, fine = torch.randn(2, 3, 6, 10, generator=g), torch.randn(2, 8, 24, 40, generator=g)
    head = PointHead(8, 3, hidden=16)
    logits = coarse
    with torch.no_grad():
        for _ in range(2):
            up = F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False)
            logits = subdivision_step(logits, coarse, fine, head, n)
            changed = (logits != up).any(dim=1).flatten(1).sum(dim=1)
            assert (changed <= n).all() and (changed > 0).all()


def test_point_head_reconcatenates_the_coarse_logits():
    head = PointHead(8, 3, hidden=16, layers=3)
    assert [layer.in_channels for layer in head.layers] == [11, 19, 19]
    assert head.predictor.in_channels == 19 and head.predictor.out_channels == 3
    out = head(torch.randn(2, 8, 50), torch.randn(2, 3, 50))
    assert out.shape == (2, 3, 50)


def test_bf16_autocast_samples_in_float32():
    x = torch.randn(1, 3, 40, 60, generator=torch.Generator().manual_seed(3))
    points = torch.rand(1, 500, 2, generator=torch.Generator().manual_seed(4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = point_sample(x, points)
    torch.testing.assert_close(low, point_sample(x, points), rtol=0, atol=0)
    # bf16 features (outside autocast) are sampled on a grid of their own dtype
    low = point_sample(x.bfloat16(), points)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), point_sample(x.bfloat16().float(), points),
                               rtol=0, atol=1e-2)


def test_validates_its_ratios():
    with pytest.raises(ValueError):
        sample_training_points(_two_regions(), 10, oversample=0.5)
    with pytest.raises(ValueError):
        sample_training_points(_two_regions(), 10, importance=1.5)


def _small_pointrend(**kw):
    from agriseg.models.archs.pointrend import PointRendNet

    torch.manual_seed(0)
    return PointRendNet("resnet18", 3, 3, coarse_channels=16, point_hidden=16, num_points=256,
                        **kw)


def test_auxiliary_loss_reads_labels_at_the_points_ignores_255_and_trains_the_point_head():
    model = _small_pointrend().train()
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(5))
    labels = torch.randint(0, 3, (2, 64, 96), generator=torch.Generator().manual_seed(6))
    labels[:, :, :40] = 255
    model(x)
    points, logits = model._points, model._point_logits
    loss = model.auxiliary_loss(labels)
    # the expected loss: labels at the pixel each point falls in, 255 left out
    cols = (points[..., 0] * 96).long().clamp(max=95)
    rows = (points[..., 1] * 64).long().clamp(max=63)
    target = labels[torch.arange(2)[:, None], rows, cols]
    assert (target == 255).any() and (target != 255).any()
    torch.testing.assert_close(loss, F.cross_entropy(logits, target, ignore_index=255))
    assert torch.isfinite(loss)
    loss.backward()
    head = model.point_head
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    # not detached: the point loss also trains the fine features and the coarse head
    assert model.encoder.layer1[0].conv1.weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad.abs().sum() > 0
    with pytest.raises(RuntimeError, match="training mode"):
        model.auxiliary_loss(labels)  # used once per forward


def test_an_all_ignored_batch_has_a_zero_point_loss_with_a_gradient():
    model = _small_pointrend().train()
    model(torch.randn(1, 3, 64, 96))
    loss = model.auxiliary_loss(torch.full((1, 64, 96), 255, dtype=torch.int64))
    assert loss.item() == 0
    loss.backward()
    assert model.point_head.predictor.weight.grad.abs().sum() == 0
