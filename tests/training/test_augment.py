"""Augmentation keeps image and label aligned, is deterministic, and validates its config."""

import numpy as np
import pytest

from agriseg.errors import ConfigError
from agriseg.training.augment import NODATA, Augment, dihedral, zoom


def blocky_pair(h=40, w=48, block=8, seed=0, corner=True):
    """A label of constant blocks and an image whose channel 0 encodes it (label + 1)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 5, (h // block, w // block))
    label = np.kron(coarse, np.ones((block, block), dtype=np.int64))
    if corner:  # asymmetric single pixels so every dihedral transform moves something unique
        label[0, 0] = 3
        label[0, 1] = 4
    image = np.stack([label + 1.0, rng.random((h, w)), np.arange(h * w).reshape(h, w) / (h * w)])
    return image.astype(np.float32), label


def geometric_only(**kw):
    return Augment(brightness=0.0, contrast=0.0, gamma=0.0, **kw)


@pytest.mark.parametrize("k", range(8))
def test_each_dihedral_transform_keeps_alignment(k):
    image, label = blocky_pair()
    ti, tl = dihedral(image, k), dihedral(label, k)
    assert ti.shape[1:] == tl.shape
    np.testing.assert_array_equal(ti[0] - 1, tl)
    assert ti.flags.c_contiguous and tl.flags.c_contiguous


def test_eight_dihedral_transforms_are_distinct_and_a_group():
    square = np.arange(16).reshape(4, 4)
    outs = [dihedral(square, k) for k in range(8)]
    assert len({o.tobytes() for o in outs}) == 8
    np.testing.assert_array_equal(outs[0], square)
    np.testing.assert_array_equal(outs[1], np.rot90(square))
    np.testing.assert_array_equal(outs[4], square[:, ::-1])


def test_augment_picks_every_dihedral_transform_and_keeps_alignment():
    image, label = blocky_pair(h=32, w=32)
    aug = geometric_only(scale=1.0)
    seen = set()
    for seed in range(64):
        ti, tl = aug(image, label, np.random.default_rng(seed))
        np.testing.assert_array_equal(ti[0] - 1, tl)
        seen.add(tl.tobytes())
    assert len(seen) == 8


@pytest.mark.parametrize("factor", [0.6, 0.8, 1.0, 1.3, 1.7])
def test_zoom_keeps_alignment_and_pads_with_unknown(factor):
    image, label = blocky_pair(h=64, w=96, block=16, corner=False)
    h, w = label.shape
    extra = round(h * factor) - h, round(w * factor) - w
    offset = (extra[0] // 2, extra[1] // 3)
    zi, zl = zoom(image, label, factor, offset)
    assert zi.shape == image.shape and zl.shape == label.shape and zl.dtype == label.dtype
    pad = zl == NODATA
    assert pad.any() == (factor < 1)
    assert np.all(zi[:, pad] == 0)
    # bilinear only mixes at class edges: wherever the 5x5 label neighbourhood is uniform (it
    # covers both bilinear neighbours at these zooms), the image-derived label must equal the
    # nearest-resampled label; a shifted or rotated label would fail this inside every block
    interior = _uniform(zl) & ~pad
    assert interior.sum() > 0.25 * (~pad).sum()
    np.testing.assert_allclose(zi[0][interior] - 1, zl[interior], atol=1e-5)


@pytest.mark.parametrize("factor", [0.6, 0.77, 1.3, 1.9])
@pytest.mark.parametrize("axis", [0, 1])
def test_zoom_samples_image_and_label_at_the_same_place(factor, axis):
    """Image = pixel coordinate, label = the same coordinate: after zooming, the bilinear
    image gives the exact source position and the nearest label must be within half a pixel
    of it everywhere (a one-pixel shift between the two samplers would fail)."""
    h, w = 50, 70
    coord = np.indices((h, w))[axis]
    image = np.stack([coord, coord]).astype(np.float32)
    extra = round(h * factor) - h, round(w * factor) - w
    zi, zl = zoom(image, coord.astype(np.int64), factor, (extra[0] // 3, extra[1] // 2))
    inside = zl != NODATA
    assert np.abs(zi[0][inside] - zl[inside]).max() <= 0.5 + 1e-4


def test_zoom_identity_and_offset_crop():
    image, label = blocky_pair()
    zi, zl = zoom(image, label, 1.0, (0, 0))
    np.testing.assert_allclose(zi, image, atol=1e-6)
    np.testing.assert_array_equal(zl, label)
    _, zl2 = zoom(image, label, 2.0, (10, 6))  # 2x zoom: output pixel (y, x) <- (y+10)//2
    np.testing.assert_array_equal(zl2, label[np.arange(40)[:, None] // 2 + 5,
                                             np.arange(48)[None, :] // 2 + 3])


def test_full_augment_keeps_alignment_after_scale_jitter_and_flips():
    image, label = blocky_pair(h=64, w=64, block=16, corner=False)
    aug = Augment(brightness=0.0, contrast=0.0, gamma=0.0, scale=1.7)
    factors_seen = set()
    for seed in range(20):
        ti, tl = aug(image, label, np.random.default_rng(seed))
        pad = tl == NODATA
        factors_seen.add(bool(pad.any()))
        interior = _uniform(tl) & ~pad
        np.testing.assert_allclose(ti[0][interior] - 1, tl[interior], atol=1e-5)
        assert np.all(ti[:, pad] == 0)
    assert factors_seen == {True, False}  # both zoom out (padding) and zoom in happened


def _uniform(label, r=2):
    p = np.pad(label, r, mode="edge")
    h, w = label.shape
    same = np.ones(label.shape, dtype=bool)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            same &= p[dy:dy + h, dx:dx + w] == label
    return same


def test_deterministic_per_seed_and_varies_between_seeds():
    image, label = blocky_pair()
    aug = Augment()
    a = aug(image, label, np.random.default_rng(7))
    b = aug(image, label, np.random.default_rng(7))
    c = aug(image, label, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].dtype == np.float32


def test_photometric_changes_image_only_within_configured_ranges():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 16, 16)).astype(np.float32)
    label = np.zeros((16, 16), dtype=np.uint8)
    before = image.copy()
    out, lab = Augment(flips=False, scale=1.0, contrast=0.0, gamma=0.0, brightness=0.5)(
        image, label, np.random.default_rng(1))
    shift = out - image
    assert np.ptp(shift) < 1e-5 and 0 < abs(shift.flat[0]) <= 0.5  # one additive shift
    np.testing.assert_array_equal(image, before)  # input untouched
    assert lab is label or np.array_equal(lab, label)
    out, _ = Augment(flips=False, scale=1.0, brightness=0.0, gamma=0.0, contrast=0.3)(
        image, label, np.random.default_rng(1))
    ratio = out.std(axis=(1, 2)) / image.std(axis=(1, 2))
    assert np.allclose(ratio, ratio[0], atol=1e-4) and 0.7 <= ratio[0] <= 1.3
    np.testing.assert_allclose(out.mean(axis=(1, 2)), image.mean(axis=(1, 2)), atol=1e-5)


def test_gamma_is_monotonic_and_keeps_each_band_range():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 20, 20)).astype(np.float32)
    aug = Augment(flips=False, scale=1.0, brightness=0.0, contrast=0.0, gamma=0.5)
    out = aug.photometric(image, np.random.default_rng(3))
    assert np.all(np.isfinite(out))
    for b in range(2):
        order = np.argsort(image[b].ravel())
        assert np.all(np.diff(out[b].ravel()[order]) >= -1e-6)  # order preserved
        assert out[b].min() == pytest.approx(image[b].min(), abs=1e-5)
        assert out[b].max() == pytest.approx(image[b].max(), abs=1e-5)
    assert not np.allclose(out, image)
    flat = np.zeros((1, 4, 4), dtype=np.float32)  # a constant band stays finite and constant
    np.testing.assert_array_equal(aug.photometric(flat, np.random.default_rng(0)), flat)


def test_from_config_and_validation():
    aug = Augment.from_config({"flips": False, "scale": 1.5, "gamma": 0})
    assert aug == Augment(flips=False, scale=1.5, gamma=0.0)
    assert Augment.from_config(None) == Augment()
    with pytest.raises(ConfigError, match="unknown augment option.*rotate.*valid options"):
        Augment.from_config({"rotate": True})
    with pytest.raises(ConfigError, match="scale"):
        Augment.from_config({"scale": 0.5})
    with pytest.raises(ConfigError, match="contrast"):
        Augment(contrast=1.5)
    with pytest.raises(ConfigError, match="must be numbers"):
        Augment.from_config({"gamma": "lots"})
