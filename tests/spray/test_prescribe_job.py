"""``agriseg.prescribe`` on a generated field with known weed patches and on the sample tiles:
coverage of every weed pixel, areas, thresholds, headland, and every format read back."""

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from conftest import weed_field
from pyproj import CRS, Transformer

from agriseg.spray import prescribe
from agriseg.vector.attributes import metric_area_perimeter

SAMPLES = Path(__file__).resolve().parents[2] / "sample_tiles"


def weed_pixel_centres(mask_path, crs="EPSG:4326"):
    """Centres of every weed (class 2) pixel, as (x, y) in ``crs``."""
    with rasterio.open(mask_path) as src:
        rows, cols = np.nonzero(src.read(1) == 2)
        x, y = rasterio.transform.xy(src.transform, rows, cols, offset="center")
        tr = Transformer.from_crs(src.crs, crs, always_xy=True)
        return np.column_stack(tr.transform(np.asarray(x), np.asarray(y)))


def read_zip(folder):
    return pyogrio.read_dataframe(f"/vsizip/{folder / 'prescription.zip'}/prescription.shp")


@pytest.mark.parametrize("geographic,heading", [(False, 0.0), (False, 25.0), (True, 0.0),
                                                (True, -40.0)])
def test_every_weed_pixel_lies_in_a_sprayed_cell(tmp_path, geographic, heading):
    mask = weed_field(tmp_path / "mask.tif", geographic=geographic)
    r = prescribe(mask, tmp_path / "out", threshold=0.0, buffer_m=0.0, heading_deg=heading)
    shp = read_zip(tmp_path / "out")
    sprayed = shapely.union_all(shp.geometry[shp.RATE > 0].to_numpy())
    pts = weed_pixel_centres(mask)
    assert shapely.contains_xy(sprayed, pts[:, 0], pts[:, 1]).all()
    g = r.report["grids"]["field"]
    assert g["crs"] == ("EPSG:32634")  # geographic masks get the UTM zone of the field
    assert 0 < g["cells_sprayed"] == g["cells_triggered"] < g["cells"] / 5  # buffer 0: no more
    pts = weed_pixel_centres(mask, g["crs"])
    plan = r.plans["field"]
    hit = plan.grid.flat_index(pts[:, 0], pts[:, 1])
    assert np.array_equal(np.unique(hit), np.flatnonzero(plan.sprayed))  # weed cells only


def test_buffer_sprays_every_point_closer_than_it(tmp_path):
    mask = weed_field(tmp_path / "mask.tif")
    r = prescribe(mask, tmp_path / "out", threshold=0.0, buffer_m=0.7, heading_deg=15.0,
                  formats=("gpkg",))
    cells = gpd.read_file(tmp_path / "out" / "prescription.gpkg")
    sprayed = shapely.union_all(cells.geometry[cells.RATE > 0].to_numpy())
    weed = weed_pixel_centres(mask, "EPSG:32634")
    weed = weed[np.random.default_rng(0).choice(len(weed), 300, replace=False)]
    angle = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ring = np.concatenate([np.column_stack([np.cos(angle), np.sin(angle)]) * d
                           for d in (0.35, 0.69)])
    near = (weed[:, None, :] + ring[None]).reshape(-1, 2)  # points closer than the buffer
    field = shapely.union_all(cells.geometry.to_numpy())
    near = near[shapely.contains_xy(field, near[:, 0], near[:, 1])]
    assert len(near) > 5000 and shapely.contains_xy(sprayed, near[:, 0], near[:, 1]).all()
    assert r.report["grids"]["field"]["cells_sprayed"] > r.report["grids"]["field"][
        "cells_triggered"]


def test_threshold_sprays_the_cells_at_or_above_it(tmp_path):
    mask = weed_field(tmp_path / "mask.tif")  # 2 cm pixels: a 1 m cell is 50 x 50 pixels
    r = prescribe(mask, tmp_path / "out", threshold=0.2, buffer_m=0.0)
    with rasterio.open(mask) as src:
        m = src.read(1)[::-1]  # row 0 = south, as the grid counts
    blocks = m.reshape(10, 50, 12, 50).swapaxes(1, 2)
    valid = (blocks != 255).sum(axis=(2, 3))
    share = np.divide((blocks == 2).sum(axis=(2, 3)), valid, out=np.zeros((10, 12)),
                      where=valid > 0)
    plan = r.plans["field"]
    assert plan.grid.shape == (10, 12)
    assert np.allclose(plan.weed_share.reshape(10, 12), share)
    assert np.array_equal(plan.sprayed.reshape(10, 12), share >= 0.2)
    assert np.array_equal(plan.field.reshape(10, 12), valid > 0)
    shp = read_zip(tmp_path / "out")
    assert sorted(shp.WEED_PCT[shp.RATE > 0].round(4)) == sorted(
        np.round(share[share >= 0.2] * 100, 4))


def test_reported_areas_are_sums_of_the_cells(tmp_path):
    mask = weed_field(tmp_path / "mask.tif")
    boundary = tmp_path / "field.gpkg"
    poly = shapely.Polygon([(500_001.3, 4_649_990.4), (500_011.2, 4_649_991.1),
                            (500_010.5, 4_649_999.0), (500_002.0, 4_649_998.2)])
    gpd.GeoDataFrame(geometry=[poly], crs="EPSG:32634").to_file(boundary)
    r = prescribe(mask, tmp_path / "out", boundary=boundary, heading_deg=8.0, rate=120,
                  formats=("shp", "gpkg"))
    g = r.report["grids"]["field"]
    gpkg = gpd.read_file(tmp_path / "out" / "prescription.gpkg")
    assert g["field_area_ha"] * 1e4 == pytest.approx(poly.area, rel=1e-9)  # clipped cells
    assert g["sprayed_area_ha"] * 1e4 == pytest.approx(gpkg.AREA_M2[gpkg.RATE > 0].sum(),
                                                       abs=1e-3)
    assert gpkg.geometry.area.sum() == pytest.approx(poly.area, rel=1e-9)
    shp = read_zip(tmp_path / "out")  # in EPSG:4326: measure it on the ellipsoid
    areas = metric_area_perimeter(shp.geometry[shp.RATE > 0].to_numpy(), CRS(4326))[0]
    # UTM's scale factor on its central meridian (0.9996) makes its m² 0.08% small
    assert g["sprayed_area_ha"] * 1e4 == pytest.approx(areas.sum() * 0.9996**2, rel=1e-4)
    assert g["unsprayed_area_ha"] == pytest.approx(g["field_area_ha"] - g["sprayed_area_ha"])
    assert g["product"] == pytest.approx(120 * g["sprayed_area_ha"])
    assert g["broadcast_product"] == pytest.approx(120 * g["field_area_ha"])
    assert g["savings_pct"] == pytest.approx(100 - g["sprayed_pct"]) and g["savings_pct"] > 50
    report = json.loads((tmp_path / "out" / "prescription.json").read_text())
    assert report["grids"]["field"] == g and report["product_unit"] == "l"


def test_shapefile_zip_is_what_terminals_load(tmp_path):
    mask = weed_field(tmp_path / "mask.tif")
    r = prescribe(mask, tmp_path / "out", rate=95.5)
    with zipfile.ZipFile(tmp_path / "out" / "prescription.zip") as zf:
        assert sorted(zf.namelist()) == [f"prescription.{e}" for e in
                                         ("cpg", "dbf", "prj", "shp", "shx")]
    path = f"/vsizip/{tmp_path / 'out' / 'prescription.zip'}/prescription.shp"
    info = pyogrio.read_info(path)
    assert CRS(info["crs"]).equals(CRS(4326)) and info["geometry_type"] == "Polygon"
    fields = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert fields["RATE"] == "float64" and fields["WEED_PCT"] == "float64"
    assert all(len(f) <= 10 and f.isascii() for f in fields)
    shp = read_zip(tmp_path / "out")
    assert not shp.isna().any().any() and len(shp) == r.report["grids"]["field"]["cells"]
    assert set(shp.RATE) == {0.0, 95.5} and not shp.geometry.has_z.any()
    lon, lat = shapely.get_coordinates(shp.geometry.to_numpy()).T
    assert (lon > 20).all() and (lon < 22).all() and (lat > 41).all() and (lat < 43).all()


def test_headland_is_sprayed_at_the_rate(tmp_path):
    mask = weed_field(tmp_path / "mask.tif", patches=())  # no weed at all
    boundary = tmp_path / "field.gpkg"
    poly = shapely.box(500_001.0, 4_649_991.0, 500_009.5, 4_649_998.5)
    gpd.GeoDataFrame(geometry=[poly], crs="EPSG:32634").to_file(boundary)
    r = prescribe(mask, tmp_path / "out", boundary=boundary, headland_m=2.0,
                  weed_class="weed", formats=("gpkg",))
    cells = gpd.read_file(tmp_path / "out" / "prescription.gpkg")
    near = shapely.distance(cells.geometry.to_numpy(), poly.exterior) < 2.0 - 1e-9
    assert np.array_equal(cells.HEADLAND.to_numpy() == 1, near)
    assert np.array_equal(cells.RATE.to_numpy() > 0, near) and 0 < near.sum() < len(cells)
    assert r.report["grids"]["field"]["cells_triggered"] == 0


def test_map_folder_mask_and_polygons_give_the_same_prescription(tmp_path):
    """The sample tile's label raster, as a map folder, and its label polygons."""
    folder = tmp_path / "field-map"
    folder.mkdir()
    (folder / "mask.tif").write_bytes((SAMPLES / "field_rgb_labels.tif").read_bytes())
    boundary = tmp_path / "field.gpkg"
    with rasterio.open(SAMPLES / "field_rgb_labels.tif") as src:
        gpd.GeoDataFrame(geometry=[shapely.box(*src.bounds)], crs=src.crs).to_file(boundary)
    kw = dict(boundary=boundary, threshold=0.03, buffer_m=0.0, formats=("gpkg",))
    a = prescribe(folder, tmp_path / "a", **kw).plans["field"]
    b = prescribe(SAMPLES / "field_rgb_labels.gpkg", tmp_path / "b", **kw).plans["field"]
    assert np.allclose(a.weed_share, b.weed_share, atol=1e-9)
    assert np.array_equal(a.sprayed, b.sprayed) and 0 < a.sprayed.sum() < a.field.sum()


def test_the_map_folder_mask_name_is_agriseg_maps():
    from agriseg.jobs.fieldmap import MASK_NAME
    from agriseg.spray.source import MAP_MASK_NAME

    assert MAP_MASK_NAME == MASK_NAME


def test_sample_tile_report(tmp_path):
    r = prescribe(SAMPLES / "field_rgb_labels.tif", tmp_path / "out", threshold=0.05,
                  heading_deg=8.0, formats=("shp", "isoxml", "gpkg"))
    rep = r.report
    assert rep["input"]["weed_classes"] == ["weed"] and rep["input"]["weed_class_ids"] == [2]
    assert set(rep["grids"]) == {"field", "isoxml"}
    for g in rep["grids"].values():
        assert 0 < g["cells_sprayed"] < g["cells"]
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {
        "prescription.zip", "prescription.gpkg", "prescription.json", "TASKDATA"}
    # the counts are those of the files written: cells with a rate in the GeoPackage and the
    # ISO-XML grid's binary
    rates = pyogrio.read_dataframe(out / "prescription.gpkg")["RATE"].to_numpy()
    assert len(rates) == rep["grids"]["field"]["cells"]
    assert (rates > 0).sum() == rep["grids"]["field"]["cells_sprayed"]
    values = np.fromfile(out / "TASKDATA" / "GRD00000.BIN", dtype="<i4")
    assert (values > 0).sum() == rep["grids"]["isoxml"]["cells_sprayed"]


def test_weed_classes_by_default_name_or_id():
    from agriseg.errors import VectorError
    from agriseg.spray.source import pick_weed_classes

    names = {0: "soil", 1: "crop", 2: "broadleaf_weed", 3: "grass_WEED", 4: "class_4"}
    assert pick_weed_classes(names, None, "m") == ((2, 3), ("broadleaf_weed", "grass_WEED"))
    assert pick_weed_classes(names, "Grass_weed", "m") == ((3,), ("grass_WEED",))
    assert pick_weed_classes(names, ["1", 4], "m") == ((1, 4), ("crop", "class_4"))
    with pytest.raises(VectorError, match=r"'7' is not a class .*0=soil, 1=crop"):
        pick_weed_classes(names, "7", "m")
