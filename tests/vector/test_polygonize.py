"""Strip-wise polygonization: seams merged, independent of the strip height."""

from typing import NamedTuple

import numpy as np
import pytest
import shapely
from scipy import ndimage

from agriseg.vector.polygonize import polygonize_strips


def field_mask(h=240, w=320, seed=0):
    rng = np.random.default_rng(seed)
    g = ndimage.gaussian_filter(rng.standard_normal((h, w)), 3)
    m = np.digitize(g, np.quantile(g, [0.6, 0.8])).astype(np.uint8)  # 0 soil, 1 crop, 2 weed
    m[100:118, 40:290] = 255  # no-data band
    # a U-shaped crop region whose arms join only at the bottom, far below a seam
    m[5:205, 295:320] = 0  # a moat, so the U touches nothing else
    m[10:200, 300:305] = 1
    m[10:200, 315:320] = 1
    m[195:200, 300:320] = 1
    m[10:195, 305:315] = 0
    return m


class Region(NamedTuple):
    class_id: int
    geometry: shapely.Geometry
    value_sum: float
    value_count: int


def regions(mask, strip_rows, connectivity=4, classes=(1, 2), values=None, workers=0):
    def strips():
        for y in range(0, mask.shape[0], strip_rows):
            v = None if values is None else values[y:y + strip_rows]
            yield y, mask[y:y + strip_rows], v

    # 8-connected pieces may touch themselves at a corner; vectorize repairs them the same way
    out = [Region(int(c), g if g.is_valid else shapely.make_valid(g, method="structure"), s, n)
           for batch in
           polygonize_strips(strips(), classes=classes, connectivity=connectivity,
                             workers=workers)
           for c, g, s, n in zip(batch.class_ids, batch.geoms, batch.value_sums,
                                 batch.value_counts, strict=True)]
    return sorted(out, key=lambda r: (r.class_id, shapely.normalize(r.geometry).wkb))


@pytest.mark.parametrize("connectivity", [4, 8])
def test_same_polygons_for_any_strip_height(connectivity):
    mask = field_mask()
    whole = regions(mask, mask.shape[0], connectivity)
    assert len(whole) > 20
    for rows in (1, 17, 64, 256):
        got = regions(mask, rows, connectivity)
        assert len(got) == len(whole)
        for a, b in zip(whole, got, strict=True):
            assert a.class_id == b.class_id
            assert shapely.equals_exact(shapely.normalize(a.geometry),
                                        shapely.normalize(b.geometry), 0.0)
            assert abs(a.geometry.area - b.geometry.area) <= 1e-9 * a.geometry.area


def test_u_shape_and_tall_region_come_out_whole():
    mask = field_mask()
    got = regions(mask, 17)
    u = [r for r in got if r.class_id == 1 and r.geometry.bounds == (300, 10, 320, 200)]
    assert len(u) == 1 and u[0].geometry.geom_type == "Polygon"
    assert u[0].geometry.area == 5 * 190 * 2 + 10 * 5  # two arms and the base
    assert len(u[0].geometry.interiors) == 0  # the U is open at the top


def test_area_equals_pixel_count_and_nodata_background_excluded():
    mask = field_mask()
    got = regions(mask, 33)
    for c in (1, 2):
        area = sum(r.geometry.area for r in got if r.class_id == c)
        assert area == (mask == c).sum()
    assert all(r.class_id in (1, 2) for r in got)
    assert all(r.geometry.is_valid for r in got)


def test_worker_processes_give_the_same_regions():
    mask = field_mask()
    serial = regions(mask, 16)
    parallel = regions(mask, 16, workers=2)
    assert len(serial) == len(parallel)
    for a, b in zip(serial, parallel, strict=True):
        assert a.class_id == b.class_id and shapely.equals_exact(a.geometry, b.geometry, 0)


def test_values_are_averaged_per_region_across_seams():
    mask = np.zeros((50, 40), np.uint8)
    mask[5:45, 10:20] = 1
    values = np.full(mask.shape, 255, np.uint8)
    values[5:25, 10:20] = 40
    values[25:45, 10:20] = 80
    values[30, 10:20] = 255  # no-data confidence is skipped
    (r,) = regions(mask, 7, values=values)
    assert r.value_count == 390
    assert r.value_sum / r.value_count == pytest.approx((200 * 40 + 190 * 80) / 390)


def test_eight_connectivity_joins_diagonal_pixels():
    mask = np.zeros((6, 6), np.uint8)
    mask[1, 1] = mask[2, 2] = mask[3, 3] = 1
    assert len(regions(mask, 2, connectivity=4)) == 3
    (r,) = regions(mask, 2, connectivity=8)
    assert r.geometry.area == 3


def test_workers_are_never_forked_from_the_caller():
    """The caller may hold torch/GDAL threads: a fork could copy a held lock."""
    from agriseg.vector.polygonize import worker_context

    assert worker_context().get_start_method() in ("forkserver", "spawn")


def test_workers_start_from_a_script_without_a_main_guard(tmp_path):
    """Workers that are not forked re-import the caller's main script unless prevented; a
    plain top-level script calling vectorize must just work."""
    import subprocess
    import sys

    from conftest import write_raster

    mask = np.random.default_rng(0).integers(0, 3, (1, 64, 40)).astype(np.uint8)
    write_raster(tmp_path / "m.tif", mask)
    script = tmp_path / "plain.py"
    script.write_text(
        "from agriseg.vector.vectorize import vectorize_mask\n"
        f"r = vectorize_mask({str(tmp_path / 'm.tif')!r}, {str(tmp_path / 'p.gpkg')!r}, "
        "strip_rows=8, workers=2)\n"
        "print('polygons', r.polygons)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("polygons") == 1  # the script ran once, not once per worker
    single = regions(mask[0], 64)
    assert f"polygons {len(single)}" in out.stdout
