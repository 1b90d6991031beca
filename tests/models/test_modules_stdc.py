"""STDC (STDC-Seg): the published stage channels and strides of STDC1/STDC2, the STDC module's
concatenation, the detail target (edges only) and the detail loss of training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agriseg.models.modules.stdc import (
    STDCModule,
    detail_loss,
    detail_target,
    label_edges,
    stdc_net,
)


@pytest.mark.parametrize(("name", "layers"), [("stdc1", (2, 2, 2)), ("stdc2", (4, 5, 3))])
def test_published_channels_and_strides(name, layers):
    net = stdc_net(name).eval()
    assert net.out_channels == (32, 64, 256, 512, 1024)
    assert net.strides == (2, 4, 8, 16, 32) and net.output_stride == 32
    assert tuple(len(stage) for stage in net.stages[2:]) == layers
    assert [m.stride for m in net.stages[2]] == [2] + [1] * (layers[0] - 1)
    with torch.no_grad():
        features = net(torch.randn(1, 3, 96, 160))
    assert [tuple(f.shape[1:]) for f in features] == [
        (c, 96 // s, 160 // s) for c, s in zip(net.out_channels, net.strides, strict=True)]


def test_unknown_network_is_refused():
    with pytest.raises(ValueError, match="stdc1, stdc2"):
        stdc_net("stdc3")


@pytest.mark.parametrize("stride", [1, 2])
def test_the_module_concatenates_its_four_blocks(stride):
    torch.manual_seed(0)
    m = STDCModule(16, 64, stride).eval()
    x = torch.randn(2, 16, 12, 20)
    with torch.no_grad():
        out = m(x)
        first = m.blocks[0](x)
        second = m.blocks[1](m.down(first))
        third = m.blocks[2](second)
        fourth = m.blocks[3](third)
    assert [b[0].out_channels for b in m.blocks] == [32, 16, 8, 8]
    assert [b[0].kernel_size for b in m.blocks] == [(1, 1), (3, 3), (3, 3), (3, 3)]
    assert out.shape == (2, 64, 12 // stride, 20 // stride)
    skip = torch.nn.functional.avg_pool2d(first, 3, 2, 1) if stride == 2 else first
    torch.testing.assert_close(out, torch.cat([skip, second, third, fourth], 1))
    if stride == 2:  # the downsampling of block 2 is a depthwise conv
        assert m.down[0].groups == 32 and m.down[0].stride == (2, 2)


def _square(h: int = 32, w: int = 64, top: int = 9, left: int = 17, side: int = 14,
            inside: int = 1, outside: int = 0) -> torch.Tensor:
    labels = torch.full((1, h, w), outside, dtype=torch.int64)
    labels[:, top:top + side, left:left + side] = inside
    return labels


def _near_another_class(labels: np.ndarray, radius: int) -> np.ndarray:
    """Pixels with a pixel of another class within ``radius`` (Chebyshev), in the image."""
    h, w = labels.shape
    out = np.zeros_like(labels, dtype=bool)
    for i in range(h):
        for j in range(w):
            win = labels[max(i - radius, 0):i + radius + 1, max(j - radius, 0):j + radius + 1]
            out[i, j] = (win != labels[i, j]).any()
    return out


def test_the_stride_1_edges_of_a_square_are_the_pixels_beside_its_boundary():
    labels = _square()
    edges = label_edges(labels)[0].numpy().astype(bool)
    ring = _near_another_class(labels[0].numpy(), 1)
    np.testing.assert_array_equal(edges, ring)
    # both sides of the boundary: the square's outer row of pixels and the background's
    assert edges.sum() == (14 * 4 - 4) + (16 * 4 - 4)


@pytest.mark.parametrize(("top", "left"), [(9, 17), (8, 16), (10, 21)])
def test_the_detail_target_of_a_square_marks_only_its_edge(top, left):
    labels = _square(top=top, left=left)
    target = detail_target(labels)[0].numpy()
    assert set(np.unique(target)) == {0.0, 1.0}
    near1 = _near_another_class(labels[0].numpy(), 1)
    near2 = _near_another_class(labels[0].numpy(), 2)
    assert target[near1].all()          # every pixel beside the boundary
    assert not target[~near2].any()     # nothing further than 2 pixels from it
    # the square's inside and the background away from it are not detail
    assert target[top + 3:top + 11, left + 3:left + 11].sum() == 0
    assert target[:, :left - 3].sum() == 0 and target[:, left + 17:].sum() == 0


def test_the_target_depends_on_boundaries_not_on_class_ids_or_the_image_border():
    a = detail_target(_square(inside=1, outside=0))
    b = detail_target(_square(inside=0, outside=2))
    torch.testing.assert_close(a, b)
    assert detail_target(torch.full((1, 16, 24), 2)).sum() == 0  # one class: no detail


def test_ignored_pixels_make_no_edges():
    labels = _square(inside=255, outside=1)
    assert detail_target(labels).sum() == 0
    labels[:, :, :4] = 0  # a real boundary elsewhere is still found
    edges = label_edges(labels)[0]
    assert edges[:, 3:5].all() and edges[:, 5:].sum() == 0


def _labels_with_ignored_band() -> torch.Tensor:
    labels = _square(h=32, w=48, top=6, left=8, side=16)
    labels[:, :, 30:] = 2
    labels[:, 20:, :] = 255
    return labels


def test_the_detail_loss_leaves_ignored_pixels_out():
    labels = _labels_with_ignored_band()
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 1, 32, 48, generator=g, requires_grad=True)
    loss = detail_loss(logits, labels)
    loss.backward()
    assert torch.isfinite(loss)
    ignored = (labels == 255)[:, None]
    assert logits.grad[ignored].abs().max() == 0 and logits.grad[~ignored].abs().min() > 0
    changed = logits.detach().clone()
    changed[ignored] = 50.0
    torch.testing.assert_close(detail_loss(changed, labels), loss.detach())
    all_ignored = torch.full_like(labels, 255)
    assert torch.isfinite(detail_loss(logits, all_ignored))


def test_a_correct_detail_prediction_has_a_small_loss():
    labels = _labels_with_ignored_band()
    target = detail_target(labels)[:, None]
    right = detail_loss(20 * (2 * target - 1), labels)
    wrong = detail_loss(-20 * (2 * target - 1), labels)
    assert right < 0.01 < 1 < wrong


def test_auxiliary_loss_is_finite_ignores_255_and_trains_the_detail_head():
    from agriseg.models.archs.stdc import STDCSeg

    torch.manual_seed(0)
    model = STDCSeg("stdc1", 3, 3).train()
    x = torch.randn(2, 3, 64, 96)
    labels = torch.zeros(2, 64, 96, dtype=torch.int64)
    labels[:, 10:40, 20:60] = 1
    labels[1, 30:, 50:] = 2
    labels[0, 50:] = 255
    model(x)
    loss = model.auxiliary_loss(labels)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    head = [p.grad for p in model.detail_head.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in head)
    assert model.encoder.stages[2][0].blocks[0][0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.head.parameters())  # only the detail path
    # the logits were released; an evaluation forward keeps none
    with pytest.raises(RuntimeError, match="training mode"):
        model.auxiliary_loss(labels)
    model.eval()
    with torch.no_grad():
        model(x)
    with pytest.raises(RuntimeError):
        model.auxiliary_loss(labels)
    # labels that are all ignored give a finite loss
    model.train()
    model(x)
    assert torch.isfinite(model.auxiliary_loss(torch.full_like(labels, 255)))
