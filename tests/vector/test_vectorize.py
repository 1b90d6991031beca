"""Mask -> polygons: georeferencing, metric areas, seams, clean-up, topology, bad input."""

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from conftest import write_raster
from pyproj import Geod
from rasterio.transform import from_origin
from scipy import ndimage

from agriseg.errors import ConfigError, RasterError
from agriseg.vector.vectorize import vectorize_mask

CLASSES = json.dumps(["soil", "crop", "weed"])


def write_mask(path, mask, crs="EPSG:32634", transform=None, nodata=255):
    profile = dict(driver="GTiff", width=mask.shape[1], height=mask.shape[0], count=1,
                   dtype="uint8", nodata=nodata, crs=crs,
                   transform=transform or from_origin(500000.0, 4650000.0, 0.01, 0.01))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(mask, 1)
        dst.update_tags(classes=CLASSES)
    return path


def single(geom):
    """The one polygon of a (Multi)Polygon: layers are written as MultiPolygon."""
    (poly,) = getattr(geom, "geoms", [geom])
    return poly


def field(h=300, w=360, seed=0):
    rng = np.random.default_rng(seed)
    g = ndimage.gaussian_filter(rng.standard_normal((h, w)), 3)
    m = np.digitize(g, np.quantile(g, [0.55, 0.8])).astype(np.uint8)
    m[140:150, 30:330] = 255
    m[5:295, 340:345] = 1  # a tall region spanning many strips
    return m


def test_known_squares_have_exact_coordinates_and_areas(tmp_path):
    mask = np.zeros((40, 50), np.uint8)
    mask[5:15, 10:30] = 1
    mask[20:23, 40:47] = 2
    t = from_origin(500000.0, 4650000.0, 0.25, 0.25)
    src = write_mask(tmp_path / "m.tif", mask, transform=t)
    vectorize_mask(src, tmp_path / "p.gpkg", strip_rows=7)
    gdf = gpd.read_file(tmp_path / "p.gpkg", engine="pyogrio", layer=0)
    assert list(gdf.class_name) == ["crop", "weed"] and list(gdf.class_id) == [1, 2]
    crop = single(gdf.geometry[0])
    xs, ys = zip(*[t * (c, r) for c, r in [(10, 5), (30, 5), (30, 15), (10, 15)]], strict=True)
    assert shapely.equals_exact(shapely.normalize(crop),
                                shapely.normalize(shapely.Polygon(zip(xs, ys, strict=True))), 0)
    assert gdf.area_m2.tolist() == [200 * 0.0625, 21 * 0.0625]
    assert gdf.area_ha[0] == pytest.approx(12.5 / 10_000)
    assert gdf.perim_m[0] == pytest.approx(2 * (20 + 10) * 0.25)
    assert gdf.crs.to_epsg() == 32634 and (gdf.source == "m.tif").all()


def test_geographic_mask_areas_are_metres(tmp_path):
    mask = np.zeros((100, 120), np.uint8)
    mask[10:90, 20:100] = 1
    t = from_origin(21.0, 45.0, 1e-5, 1e-5)
    src = write_mask(tmp_path / "m.tif", mask, crs="EPSG:4326", transform=t)
    vectorize_mask(src, tmp_path / "p.gpkg")
    gdf = gpd.read_file(tmp_path / "p.gpkg", engine="pyogrio", layer=0)
    true_area, true_perim = Geod(ellps="WGS84").geometry_area_perimeter(gdf.geometry[0])
    assert gdf.crs.to_epsg() == 4326
    assert gdf.area_m2[0] == pytest.approx(abs(true_area), rel=0.005)
    assert gdf.perim_m[0] == pytest.approx(true_perim, rel=0.005)


@pytest.mark.parametrize("opts", [{}, {"min_area_m2": 0.003, "fill_holes_m2": 0.002},
                                  {"connectivity": 8}])
def test_result_does_not_depend_on_strip_height(tmp_path, opts):
    src = write_mask(tmp_path / "m.tif", field())
    frames = []
    for rows in (17, 256, 300):
        out = tmp_path / f"p{rows}.gpkg"
        vectorize_mask(src, out, strip_rows=rows, **opts)
        gdf = gpd.read_file(out, engine="pyogrio", layer=0)  # in the order they were finished: sort
        key = gdf.bounds.assign(class_id=gdf.class_id, area=gdf.area_m2)
        order = key.sort_values(["class_id", "minx", "miny", "maxx", "maxy", "area"]).index
        frames.append(gdf.loc[order].reset_index(drop=True))
    base = frames[0]
    assert len(base) > 30
    for other in frames[1:]:
        assert len(other) == len(base)
        np.testing.assert_allclose(other.area_m2, base.area_m2, rtol=1e-9)
        assert (other.class_id.values == base.class_id.values).all()
        assert all(shapely.equals(a, b) for a, b in zip(base.geometry, other.geometry,
                                                        strict=True))


def test_min_area_and_fill_holes(tmp_path):
    mask = np.zeros((60, 60), np.uint8)
    mask[10:50, 10:50] = 1
    mask[20:22, 20:22] = 2  # weed speck inside crop: 4 px
    mask[30:33, 30:33] = 0  # background hole inside crop: 9 px
    src = write_mask(tmp_path / "m.tif", mask)
    vectorize_mask(src, tmp_path / "raw.gpkg")
    raw = gpd.read_file(tmp_path / "raw.gpkg", engine="pyogrio", layer=0)
    crop = raw.geometry[raw.class_name == "crop"].iloc[0]
    assert len(raw) == 2 and len(single(crop).interiors) == 2
    px = 0.01 * 0.01
    vectorize_mask(src, tmp_path / "clean.gpkg", min_area_m2=5 * px, fill_holes_m2=10 * px)
    clean = gpd.read_file(tmp_path / "clean.gpkg", engine="pyogrio", layer=0)
    assert len(clean) == 1 and clean.class_name[0] == "crop"
    assert len(single(clean.geometry[0]).interiors) == 0  # speck sieved into crop, hole filled
    assert clean.area_m2[0] == pytest.approx(1600 * px)


def test_simplify_keeps_a_valid_coverage(tmp_path):
    src = write_mask(tmp_path / "m.tif", field())
    vectorize_mask(src, tmp_path / "raw.gpkg")
    vectorize_mask(src, tmp_path / "s.gpkg", simplify_m=0.03)
    raw = gpd.read_file(tmp_path / "raw.gpkg", engine="pyogrio", layer=0)
    simp = gpd.read_file(tmp_path / "s.gpkg", engine="pyogrio", layer=0)
    geoms = simp.geometry.values
    assert shapely.coverage_is_valid(geoms)
    assert shapely.is_valid(geoms).all()
    assert shapely.get_num_coordinates(geoms).sum() < 0.6 * shapely.get_num_coordinates(
        raw.geometry.values).sum()
    # neighbouring crop and weed polygons still share their boundary: no sliver between them
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pairs = [(i, j) for i, j in zip(left, right, strict=True)
             if i < j and simp.class_id[i] != simp.class_id[j]]
    assert pairs
    for i, j in pairs:
        assert shapely.area(shapely.intersection(geoms[i], geoms[j])) < 1e-12
    shared = [shapely.length(shapely.intersection(raw.geometry[i], raw.geometry[j]))
              for i, j in pairs]
    assert max(shared) > 0
    # total area is preserved within the tolerance's effect
    assert simp.area_m2.sum() == pytest.approx(raw.area_m2.sum(), rel=0.05)


def test_confidence_and_class_selection(tmp_path):
    mask = np.zeros((30, 30), np.uint8)
    mask[0:10, 0:10] = 1
    mask[20:30, 20:30] = 2
    conf = np.full_like(mask, 255)
    conf[0:10, 0:10] = 70
    conf[20:30, 20:30] = 90
    src = write_mask(tmp_path / "m.tif", mask)
    conf_path = write_mask(tmp_path / "c.tif", conf)
    vectorize_mask(src, tmp_path / "w.gpkg", classes=["weed"], confidence=conf_path)
    gdf = gpd.read_file(tmp_path / "w.gpkg", engine="pyogrio", layer=0)
    assert list(gdf.class_name) == ["weed"] and gdf.mean_conf[0] == pytest.approx(90)
    with pytest.raises(ConfigError, match="unknown class 'wheat'.*crop"):
        vectorize_mask(src, tmp_path / "x.gpkg", classes=["wheat"])
    assert not (tmp_path / "x.gpkg").exists()


def test_all_background_gives_an_empty_valid_layer(tmp_path):
    src = write_mask(tmp_path / "m.tif", np.zeros((20, 20), np.uint8))
    r = vectorize_mask(src, tmp_path / "e.gpkg")
    gdf = gpd.read_file(tmp_path / "e.gpkg", engine="pyogrio", layer=0)
    assert r.polygons == 0 and len(gdf) == 0 and "area_m2" in gdf.columns


@pytest.mark.parametrize("kind", ["float", "multiband"])
def test_not_a_class_mask(tmp_path, kind):
    data = np.zeros((3 if kind == "multiband" else 1, 10, 10),
                    dtype="uint8" if kind == "multiband" else "float32")
    src = write_raster(tmp_path / "bad.tif", data)
    with pytest.raises(RasterError, match="not a class mask"):
        vectorize_mask(src, tmp_path / "out.gpkg")
    assert not (tmp_path / "out.gpkg").exists()


def test_real_label_raster(carrot_weed, tmp_path):
    """The Carrot-Weed labels (classes tag '0=soil,1=crop,2=weed') vectorize to their areas."""
    labels = carrot_weed / "IMG_3438_labels.tif"
    vectorize_mask(labels, tmp_path / "cw.gpkg", strip_rows=100)
    gdf = gpd.read_file(tmp_path / "cw.gpkg", engine="pyogrio", layer=0)
    with rasterio.open(labels) as ds:
        lab = ds.read(1)
        px = abs(ds.transform.a * ds.transform.e)
    assert set(gdf.class_name) == {"crop", "weed"}
    for cid in (1, 2):
        got = gdf.area_m2[gdf.class_id == cid].sum()
        assert got == pytest.approx((lab == cid).sum() * px, rel=1e-9)
    assert shapely.is_valid(gdf.geometry.values).all()
