"""Metres per CRS unit: one conversion for pixel sizes, tolerances and areas."""

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from agriseg.raster.io import pixel_size_m
from agriseg.raster.units import metres_per_unit, row_pixel_areas_m2
from agriseg.vector.attributes import metric_area_perimeter


def test_projected_and_geographic_units():
    assert metres_per_unit("EPSG:32634") == (1.0, 1.0)
    ft = metres_per_unit("EPSG:2227")[0]  # California zone 3, US survey feet
    assert ft == pytest.approx(1200 / 3937)
    mx, my = metres_per_unit("EPSG:4326", 60.0)
    assert mx == pytest.approx(111_320.0 / 2) and my == 110_574.0


def test_every_user_of_the_conversion_agrees(tmp_path):
    path = tmp_path / "ft.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8",
                       crs="EPSG:2227", transform=from_origin(6e6, 2e6, 0.1, 0.1)) as ds:
        ds.write(np.zeros((1, 4, 4), np.uint8))
    with rasterio.open(path) as src:
        assert pixel_size_m(src) == pytest.approx(0.1 * 1200 / 3937)
    square = np.array([shapely.box(0, 0, 10, 10)])
    area, perim = metric_area_perimeter(square, "EPSG:2227")
    assert area[0] == pytest.approx(100 * (1200 / 3937) ** 2)
    with rasterio.open(path) as src:
        rows = row_pixel_areas_m2(src.crs, src.transform, np.arange(4))
    assert rows == pytest.approx(np.full(4, 0.01 * (1200 / 3937) ** 2))


def test_pixel_areas_in_a_geographic_crs_follow_the_latitude():
    t = from_origin(21.0, 60.0, 1e-5, 1e-5)  # 1e-5 degrees: about 0.56 m x 1.1 m at 60 N
    rows = np.array([0, 1_000_000 // 2])  # 60 N and 55 N
    got = row_pixel_areas_m2("EPSG:4326", t, rows)
    pixels = np.array([shapely.box(21.0, 60.0 - 1e-5, 21.0 + 1e-5, 60.0),
                       shapely.box(21.0, 55.0 - 1e-5, 21.0 + 1e-5, 55.0)])
    exact = [metric_area_perimeter(pixels[i:i + 1], "EPSG:4326")[0][0] for i in range(2)]
    assert got == pytest.approx(exact, rel=1e-6)
    assert got[1] / got[0] == pytest.approx(np.cos(np.radians(55)) / np.cos(np.radians(60)),
                                            rel=2e-3)
