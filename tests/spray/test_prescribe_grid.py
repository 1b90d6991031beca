"""The spray grid, the buffer's structuring element and the headland, against shapely."""

import math

import numpy as np
import pytest
import shapely
from affine import Affine
from pyproj import CRS, Geod, Transformer

from agriseg.spray.cover import _pixel_centres, _projected_centres
from agriseg.spray.grid import (
    CellGrid,
    covering_grid,
    field_grid,
    lonlat_grid,
    metric_crs,
)
from agriseg.spray.rates import grow, headland_cells, reach

UTM = CRS.from_epsg(32634)


def grid(heading=0.0, w=2.0, length=1.5, cols=7, rows=5):
    return CellGrid(UTM, 500_000.0, 4_650_000.0, w, length, heading, cols, rows, w, length)


@pytest.mark.parametrize("heading", [0.0, 25.0, -70.0, 180.0])
def test_cells_are_rectangles_that_index_back_to_themselves(heading):
    g = grid(heading)
    cells = g.polygons()
    assert np.allclose(shapely.area(cells), 2.0 * 1.5)
    centres = shapely.get_coordinates(shapely.centroid(cells))
    assert np.array_equal(g.flat_index(centres[:, 0], centres[:, 1]), np.arange(g.size))
    assert shapely.union_all(cells).area == pytest.approx(g.size * 3.0)  # no overlaps
    far = g.flat_index(np.array([0.0]), np.array([0.0]))
    assert far.tolist() == [-1]


def test_heading_zero_numbers_cells_from_the_south_west_eastwards_then_northwards():
    g = grid(0.0)
    c = shapely.get_coordinates(shapely.centroid(g.polygons()))
    assert c[0].tolist() == [500_001.0, 4_650_000.75]  # the south-west cell
    assert c[1].tolist() == [500_003.0, 4_650_000.75]  # east of it
    assert c[g.n_cols].tolist() == [500_001.0, 4_650_002.25]  # north of it


def test_heading_runs_rows_along_the_direction_of_travel():
    g = grid(90.0)  # travelling east: rows advance eastwards, columns southwards
    c = shapely.get_coordinates(shapely.centroid(g.polygons()))
    assert c[g.n_cols] - c[0] == pytest.approx([1.5, 0.0])
    assert c[1] - c[0] == pytest.approx([0.0, -2.0])


@pytest.mark.parametrize("heading", [0.0, 33.0])
def test_covering_grid_is_the_smallest_that_holds_every_point(heading):
    pts = np.random.default_rng(0).uniform([0, 0], [17.3, 9.1], (500, 2)) + [500_000, 4_650_000]
    g = field_grid(UTM, pts, 1.0, 2.0, heading)
    assert (g.flat_index(pts[:, 0], pts[:, 1]) >= 0).all()
    col, row = g.cell_coords(pts[:, 0], pts[:, 1])
    assert g.n_cols == math.ceil(np.ptp(col)) and g.n_rows == math.ceil(np.ptp(row))
    assert 0 < col.min() < 1e-6 and 0 < row.min() < 1e-6  # the first point is inside


def test_field_grid_in_feet_keeps_cells_one_metre():
    feet = CRS.from_epsg(2263)  # NAD83 / New York Long Island (ftUS)
    g = field_grid(feet, np.array([[0.0, 0.0], [100.0, 100.0]]), 1.0, 1.0, 0.0)
    assert g.width == pytest.approx(1 / 0.3048006096)
    assert covering_grid(feet, np.array([[0.0, 0.0], [1.0, 1.0]]), 1, 1, 0, 1, 1).size == 1


def test_lonlat_grid_cells_measure_the_metric_size_on_the_ellipsoid():
    pts = np.array([[21.0, 42.0], [21.001, 42.001]])
    g = lonlat_grid(pts, 1.0, 2.0)
    geod = Geod(ellps="WGS84")
    lat = 42.0005
    east = geod.inv(21.0, lat, 21.0 + g.width, lat)[2]
    north = geod.inv(21.0, lat, 21.0, lat + g.length)[2]
    assert east == pytest.approx(1.0, rel=5e-3) and north == pytest.approx(2.0, rel=5e-3)
    assert g.x0 <= 21.0 and g.y0 <= 42.0 and round(g.x0, 9) == g.x0
    assert g.x0 + g.n_cols * g.width >= 21.001 and g.y0 + g.n_rows * g.length >= 42.001


def test_metric_crs_is_the_utm_zone_of_a_geographic_field():
    wgs84 = CRS.from_epsg(4326)
    assert metric_crs(wgs84, (21.5, 42.0)).to_epsg() == 32634
    assert metric_crs(wgs84, (-58.4, -34.6)).to_epsg() == 32721
    assert metric_crs(UTM, (0, 0)) is UTM


@pytest.mark.parametrize("w,length,d", [(1.0, 1.0, 0.5), (2.0, 1.5, 2.6), (1.0, 3.0, 1.0),
                                        (1.0, 1.0, 0.0)])
def test_reach_is_the_exact_rectangle_distance(w, length, d):
    g = grid(0.0, w, length, 15, 15)
    cells = g.polygons()
    centre = cells[7 * 15 + 7]
    near = (shapely.distance(cells, centre) < d).reshape(15, 15)
    near[7, 7] = True
    el = reach(g, d)
    kr, kc = el.shape[0] // 2, el.shape[1] // 2
    padded = np.zeros((15, 15), bool)
    padded[7 - kr:7 + kr + 1, 7 - kc:7 + kc + 1] = el
    assert np.array_equal(padded, near)


def test_grow_sprays_exactly_the_cells_closer_than_the_buffer():
    g = grid(40.0, 1.0, 1.0, 20, 12)
    rng = np.random.default_rng(3)
    seeds = rng.random(g.size) < 0.03
    cells = g.polygons()
    grown = grow(g, seeds, 1.7)
    dist = shapely.distance(cells[:, None], cells[seeds][None, :]).min(axis=1)
    assert np.array_equal(grown, (dist < 1.7) | seeds)


def test_headland_without_boundary_is_the_edge_of_the_field_cells():
    g = grid(0.0, 1.0, 1.0, 10, 8)
    field = np.ones(g.size, bool)
    field[:10] = False  # the southern row is outside the field
    head = headland_cells(g, field, g.polygons(), 1.5, None, None)
    rows, cols = np.divmod(np.arange(g.size), 10)
    # closer than 1.5 m to a non-field cell or the grid's edge: the outer two rings
    expect = field & ((rows <= 2) | (rows >= 6) | (cols <= 1) | (cols >= 8))
    assert np.array_equal(head, expect)


def test_headland_with_boundary_is_the_strip_inside_it():
    g = grid(0.0, 1.0, 1.0, 12, 12)
    boundary = shapely.Point(500_006, 4_650_006).buffer(5.5)
    cells = shapely.intersection(g.polygons(), boundary)
    field = shapely.area(cells) > 0
    head = headland_cells(g, field, cells, 2.0, boundary, None)
    d = shapely.distance(cells, boundary.exterior)
    assert np.array_equal(head[field], d[field] < 2.0 - 1e-6)
    assert 0 < head.sum() < field.sum()


@pytest.mark.parametrize("src,dst,t", [
    ("EPSG:32634", "EPSG:4326", Affine(0.01, 0, 500_000, 0, -0.01, 4_650_000)),
    ("EPSG:32634", "EPSG:4326", Affine(0.05, 0.01, 300_000, 0.01, -0.05, 4_650_000)),
    ("EPSG:4326", "EPSG:32634", Affine(1.8e-7, 0, 21.0, 0, -1.8e-7, 42.0))])
@pytest.mark.parametrize("width,height", [(1000, 130), (1000, 1), (37, 65), (1, 1)])
def test_pixel_centres_from_the_lattice_are_within_a_micrometre(src, dst, t, width, height):
    tr = Transformer.from_crs(src, dst, always_xy=True)
    cols, rows = np.arange(width) + 0.5, np.arange(500, 500 + height) + 0.5
    x, y = _projected_centres(tr, t, cols, rows)
    ex, ey = tr.transform(*_pixel_centres(t, cols, rows))
    assert x.shape == y.shape == (height, width)
    tol = 1e-6 / 111_000 if dst == "EPSG:4326" else 1e-6
    assert np.abs(x - ex).max() < tol and np.abs(y - ey).max() < tol
