import numpy as np
import pytest

from agriseg.infer.blending import axis_weights, crop_weights, hann_window
from agriseg.raster.grid import axis_positions


def test_hann_window_is_symmetric_positive_and_peaks_in_the_middle():
    w = hann_window(64)
    assert w.min() > 0
    np.testing.assert_allclose(w, w[::-1], atol=1e-7)
    assert w[31] == pytest.approx(w.max()) and w.max() <= 1.0


@pytest.mark.parametrize("length,patch,overlap", [(1000, 128, 32), (129, 128, 16),
                                                  (700, 256, 200), (256, 256, 0)])
def test_crop_weights_assign_each_pixel_to_exactly_one_patch(length, patch, overlap):
    pos = axis_positions(length, patch, patch - overlap)
    total = np.zeros(length)
    owner = np.full(length, -1)
    for k, (p, w) in enumerate(zip(pos, crop_weights(pos, patch, length), strict=True)):
        n = min(patch, length - p)
        total[p:p + n] += w[:n]
        owner[p:p + n][w[:n] > 0] = k
    np.testing.assert_array_equal(total, 1.0)
    # the owner is the patch whose centre is nearest
    centres = np.array(pos) + patch / 2
    x = np.arange(length) + 0.5
    nearest = np.abs(x[:, None] - centres[None, :]).argmin(axis=1)
    dist_owner = np.abs(x - centres[owner])
    dist_best = np.abs(x - centres[nearest])
    assert (dist_owner <= dist_best + 0.5).all()


def test_single_patch_axis_uses_full_weight():
    (w,) = axis_weights([0], 64, 50, "hann")
    np.testing.assert_array_equal(w, 1.0)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="hann"):
        axis_weights([0, 10], 32, 42, "gauss")
