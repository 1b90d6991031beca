import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agriseg.errors import ConfigError
from agriseg.raster.grid import axis_positions, make_grid


@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 3000), patch=st.integers(1, 600), data=st.data())
def test_axis_positions_cover_every_pixel_with_overlap(length, patch, data):
    overlap = data.draw(st.integers(0, patch - 1))
    pos = axis_positions(length, patch, patch - overlap)
    cover = np.zeros(length, dtype=int)
    for p in pos:
        cover[p:p + patch] += 1
    assert cover.min() >= 1, "a pixel is not covered"
    assert pos == sorted(set(pos)) and pos[0] == 0
    if length >= patch:
        assert pos[-1] + patch == length, "last patch must be flush with the edge"
        assert all(p + patch <= length for p in pos), "no patch may run past the edge"
        steps = np.diff(pos)
        assert (steps <= patch - overlap).all() and (steps > 0).all()
        # overlap between neighbours is at least the requested one
        assert all(a + patch - b >= overlap for a, b in zip(pos, pos[1:], strict=False))
    else:
        assert pos == [0]


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 1500), w=st.integers(1, 1500), k=st.integers(1, 8),
       div=st.sampled_from([1, 8, 16, 32]), data=st.data())
def test_grid_windows_cover_raster_exactly(h, w, k, div, data):
    patch = k * 32
    overlap = data.draw(st.integers(0, patch - 1))
    g = make_grid(h, w, patch, overlap, div)
    assert g.patch_h % div == 0 and g.patch_w % div == 0
    assert g.patch_h <= patch and g.patch_w <= patch
    cover = np.zeros((h, w), dtype=np.int32)
    for _, _, win in g.windows():
        assert win.row_off + win.height <= h and win.col_off + win.width <= w
        cover[win.row_off:win.row_off + win.height, win.col_off:win.col_off + win.width] += 1
    assert cover.min() >= 1
    assert len(g) == len(g.rows) * len(g.cols)
    # rows above final_row(i) are covered by no later patch row
    for i in range(len(g.rows)):
        later = g.rows[i + 1:]
        assert all(r >= g.final_row(i) for r in later)


def test_small_raster_patch_shrinks_to_divisor_multiple():
    g = make_grid(50, 70, 512, 64, divisor=32)
    assert (g.patch_h, g.patch_w) == (64, 96)
    assert (g.read_h, g.read_w) == (50, 70)
    assert g.rows == (0,) and g.cols == (0,)


@pytest.mark.parametrize("patch,overlap,div,msg", [
    (500, 0, 32, "use 480 or 512"),
    (256, 256, 1, "smaller than the patch size"),
    (256, -1, 1, ">= 0"),
    (0, 0, 1, "positive"),
])
def test_bad_grid_parameters_are_explained(patch, overlap, div, msg):
    with pytest.raises(ConfigError, match=msg):
        make_grid(100, 100, patch, overlap, div)
