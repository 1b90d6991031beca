"""Metres per CRS unit: one conversion for pixel sizes, tolerances and areas."""

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from agriseg.raster.io import pixel_size_m
from agriseg.raster.units import metres_per_unit
from agriseg.vector.attributes import metric_area_perimeter
from agriseg.vector.simplify import tolerance_in_crs_units


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
    assert tolerance_in_crs_units(1200 / 3937, "EPSG:2227", square) == pytest.approx(1.0)
