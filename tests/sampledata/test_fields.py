"""Tests for the synthetic field generator: determinism, seams, georeferencing, labels, polygons."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from agriseg.errors import ConfigError
from agriseg.sampledata.fields import (
    CLASS_COLORS,
    CLASS_NAMES,
    FieldLayout,
    make_field,
    make_label_polygons,
)
from agriseg.sampledata.plants import row_offset
from agriseg.sampledata.render import Scene, render_window

RGBN = ("red", "green", "blue", "nir")


def _read(path):
    with rasterio.open(path) as src:
        return src.read()


def test_same_arguments_give_identical_pixels(tmp_path):
    kw = {"width": 300, "height": 220, "bands": RGBN, "dtype": "uint16", "seed": 11,
          "nodata": 0, "nodata_fraction": 0.1}
    make_field(tmp_path / "a.tif", label_path=tmp_path / "a_lab.tif", **kw)
    make_field(tmp_path / "b.tif", label_path=tmp_path / "b_lab.tif", **kw)
    assert np.array_equal(_read(tmp_path / "a.tif"), _read(tmp_path / "b.tif"))
    assert np.array_equal(_read(tmp_path / "a_lab.tif"), _read(tmp_path / "b_lab.tif"))
    make_field(tmp_path / "c.tif", **{**kw, "seed": 12})
    assert not np.array_equal(_read(tmp_path / "a.tif"), _read(tmp_path / "c.tif"))


def test_tile_equals_window_of_larger_field(tmp_path):
    # Different heights and block sizes give different strip/chunk boundaries; the shared
    # pixels must not notice.
    make_field(tmp_path / "small.tif", width=200, height=150, seed=4, blocksize=16,
               label_path=tmp_path / "small_lab.tif")
    make_field(tmp_path / "tall.tif", width=260, height=700, seed=4, blocksize=256,
               label_path=tmp_path / "tall_lab.tif")
    assert np.array_equal(_read(tmp_path / "small.tif"),
                          _read(tmp_path / "tall.tif")[:, :150, :200])
    assert np.array_equal(_read(tmp_path / "small_lab.tif"),
                          _read(tmp_path / "tall_lab.tif")[:, :150, :200])


@pytest.mark.parametrize("pixel_size_m", [0.01, 0.004])
def test_render_does_not_depend_on_window_split(pixel_size_m):
    scene = Scene(width=330, height=290, pixel_size_m=pixel_size_m, seed=3,
                  layout=FieldLayout(row_angle_deg=35.0), nodata_fraction=0.2)
    refl, labels = render_window(scene, 0, 290)
    pieces = [render_window(scene, r, h, c, w)
              for r, h in ((0, 97), (97, 193)) for c, w in ((0, 101), (101, 229))]
    top = np.concatenate([pieces[0][0], pieces[1][0]], axis=2)
    bottom = np.concatenate([pieces[2][0], pieces[3][0]], axis=2)
    assert np.array_equal(np.concatenate([top, bottom], axis=1), refl)
    lab = np.block([[pieces[0][1], pieces[1][1]], [pieces[2][1], pieces[3][1]]])
    assert np.array_equal(lab, labels)


def test_georeferencing_bands_and_nodata(tmp_path):
    path = tmp_path / "f.tif"
    make_field(path, width=300, height=200, bands=("nir", "red"), dtype="int16", seed=2,
               pixel_size_m=0.02, crs="EPSG:32633", origin=(400000.0, 5000000.0), nodata=-1,
               blocksize=128, label_path=tmp_path / "f_lab.tif")
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32633
        assert src.transform == from_origin(400000.0, 5000000.0, 0.02, 0.02)
        assert src.descriptions == ("nir", "red")
        assert src.dtypes == ("int16", "int16")
        assert src.nodata == -1
        assert src.block_shapes == [(128, 128)] * 2
        assert src.compression.value == "DEFLATE"
        assert src.profile["tiled"]
        nir, red = src.read()
    assert not (nir == -1).any()  # nodata value set, but no nodata region requested
    assert red.min() > 0 and nir.max() <= 10000  # reflectance x 10000
    with rasterio.open(tmp_path / "f_lab.tif") as lab:
        assert lab.transform == from_origin(400000.0, 5000000.0, 0.02, 0.02)
        assert lab.crs.to_epsg() == 32633 and lab.nodata == 255 and lab.dtypes == ("uint8",)
        assert json.loads(lab.tags()["classes"]) == list(CLASS_NAMES)
        cmap = lab.colormap(1)
        assert [cmap[i][:3] for i in range(3)] == [tuple(c) for c in CLASS_COLORS]
    assert not list(tmp_path.glob(".*"))  # atomic writes leave no temporary files


def test_rgb_uint8_and_no_crs(tmp_path):
    path = tmp_path / "plain.tif"
    make_field(path, width=64, height=48, crs=None)
    with rasterio.open(path) as src:
        assert src.crs is None and src.transform.is_identity
        assert src.count == 3 and src.dtypes[0] == "uint8" and src.nodata is None
        assert src.descriptions == ("red", "green", "blue")
        assert [c.name for c in src.colorinterp] == ["red", "green", "blue"]


def test_uint8_nir_keeps_vegetation_contrast(tmp_path):
    make_field(tmp_path / "f.tif", width=256, height=256, bands=("nir", "green"), seed=6,
               label_path=tmp_path / "l.tif")
    (nir, green), labels = _read(tmp_path / "f.tif"), _read(tmp_path / "l.tif")[0]
    assert (nir[labels == 1] == 255).mean() < 0.01  # bright leaves do not clip
    assert nir[labels == 1].mean() > nir[labels == 0].mean() + 40
    assert green[labels == 1].mean() != pytest.approx(nir[labels == 1].mean(), abs=20)


def test_float32_reflectance_with_nan_nodata(tmp_path):
    make_field(tmp_path / "f.tif", width=200, height=160, bands=RGBN, dtype="float32",
               nodata=float("nan"), nodata_fraction=0.3, label_path=tmp_path / "l.tif")
    image, labels = _read(tmp_path / "f.tif"), _read(tmp_path / "l.tif")[0]
    missing = np.isnan(image)
    assert np.array_equal(missing.all(axis=0), labels == 255)
    assert not missing[:, labels != 255].any()
    valid = image[:, labels != 255]
    assert valid.min() > 0.0 and valid.max() < 1.0


def test_labels_classes_nodata_and_ndvi(tmp_path):
    make_field(tmp_path / "f.tif", width=400, height=320, bands=RGBN, dtype="uint16", seed=5,
               nodata=0, nodata_fraction=0.2, label_path=tmp_path / "l.tif")
    image, labels = _read(tmp_path / "f.tif").astype(np.float64), _read(tmp_path / "l.tif")[0]
    assert set(np.unique(labels)) == {0, 1, 2, 255}
    nodata = (image == 0).all(axis=0)
    assert np.array_equal(nodata, labels == 255)
    assert not (image[:, ~nodata] == 0).any()
    assert abs(nodata.mean() - 0.2) < 0.05
    red, nir = image[0], image[3]
    ndvi = (nir - red) / np.maximum(nir + red, 1)
    soil_ndvi = ndvi[labels == 0].mean()
    for cls in (1, 2):
        assert nir[labels == cls].mean() > nir[labels == 0].mean()
        assert ndvi[labels == cls].mean() > soil_ndvi + 0.3
    # not separable by one threshold: crop and weed greens overlap
    crop_g, weed_g = image[1][labels == 1], image[1][labels == 2]
    assert np.percentile(crop_g, 90) > np.percentile(weed_g, 10)


def test_crops_on_rows_and_weeds_mostly_between(tmp_path):
    layout = FieldLayout(row_spacing_m=0.5, row_angle_deg=20.0, weeds_per_m2=20.0)
    make_field(tmp_path / "f.tif", width=512, height=512, seed=9, layout=layout,
               label_path=tmp_path / "l.tif")
    labels = _read(tmp_path / "l.tif")[0]
    rows, cols = np.indices(labels.shape)
    t = math.radians(layout.row_angle_deg)
    across = ((cols + 0.5) * 0.01 * math.cos(t) - (rows + 0.5) * 0.01 * math.sin(t)
              - row_offset(layout, 9)) / layout.row_spacing_m
    to_row = (0.5 - np.abs(across - np.floor(across) - 0.5)) * layout.row_spacing_m
    assert to_row[labels == 1].max() < layout.crop_radius_m * 1.45
    weed_dist = to_row[labels == 2]
    assert (weed_dist > layout.crop_radius_m).mean() > 0.5


def test_plant_sizes_are_in_metres(tmp_path):
    fine, coarse = tmp_path / "fine.tif", tmp_path / "coarse.tif"
    make_field(tmp_path / "a.tif", width=400, height=400, pixel_size_m=0.01, label_path=fine)
    make_field(tmp_path / "b.tif", width=200, height=200, pixel_size_m=0.02, label_path=coarse)
    a, b = _read(fine)[0], _read(coarse)[0]
    for cls in (1, 2):
        assert abs((a == cls).mean() - (b == cls).mean()) < 0.2 * (a == cls).mean()


def test_polygon_areas_match_label_pixels(tmp_path):
    lab = tmp_path / "l.tif"
    make_field(tmp_path / "f.tif", width=300, height=240, bands=RGBN, dtype="uint16", seed=8,
               pixel_size_m=0.02, nodata=0, nodata_fraction=0.25, label_path=lab)
    make_label_polygons(lab, tmp_path / "l.gpkg", layer="truth")
    frame = geopandas.read_file(tmp_path / "l.gpkg", layer="truth")
    labels = _read(lab)[0]
    assert frame.crs.to_epsg() == 32634
    assert set(frame["class_id"]) == {1, 2}
    assert (frame["class_name"] == frame["class_id"].map(dict(enumerate(CLASS_NAMES)))).all()
    areas = frame.geometry.area.groupby(frame["class_id"]).sum()
    for cls in (1, 2):
        expected = (labels == cls).sum() * 0.02 * 0.02
        assert areas[cls] == pytest.approx(expected, rel=0.005)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"bands": ("red", "swir")}, ["swir", "nir"]),
        ({"bands": ("red", "red")}, ["red"]),
        ({"dtype": "int8"}, ["int8", "float32"]),
        ({"width": 0}, ["width=0"]),
        ({"height": -3}, ["height=-3"]),
        ({"pixel_size_m": 0.0}, ["pixel_size_m"]),
        ({"nodata_fraction": 0.2}, ["nodata"]),
        ({"nodata": 300}, ["300", "0..255"]),
        ({"blocksize": 100}, ["blocksize=100", "16"]),
        ({"compress": "jpeg2000"}, ["jpeg2000", "deflate"]),
        ({"crs": "EPSG:999999"}, ["EPSG:999999"]),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, kwargs, words):
    args = {"width": 32, "height": 32, **kwargs}
    with pytest.raises(ConfigError) as info:
        make_field(tmp_path / "x.tif", **args)
    for word in words:
        assert word in str(info.value)
    assert not list(tmp_path.iterdir())


def test_bad_layout_raises_config_error():
    with pytest.raises(ConfigError, match="row_spacing_m"):
        FieldLayout(row_spacing_m=0.0)
    with pytest.raises(ConfigError, match="crop_radius_m"):
        FieldLayout(row_spacing_m=0.2, crop_radius_m=0.15)


def test_make_samples_reproduces_the_committed_tiles(tmp_path):
    """`make samples` writes what is committed: same pixels, grid, tags and polygons."""
    import geopandas as gpd

    from agriseg.sampledata import make_sample_tiles

    committed = Path(__file__).resolve().parents[2] / "sample_tiles"
    for path in make_sample_tiles(tmp_path):
        ref = committed / path.name
        if path.suffix == ".gpkg":  # the same polygons (GDAL versions may order them apart)
            a, b = (_sorted_polygons(gpd.read_file(p)) for p in (path, ref))
            assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
            assert a.geometry.geom_equals_exact(b.geometry, 0).all() and a.crs == b.crs
            continue
        with rasterio.open(path) as new, rasterio.open(ref) as old:
            assert new.profile == old.profile and new.tags() == old.tags()
            assert np.array_equal(new.read(), old.read())
            assert new.descriptions == old.descriptions


def _sorted_polygons(gdf):
    import shapely

    gdf = gdf.set_geometry(shapely.normalize(gdf.geometry.values))  # ring starts may differ
    key = [g.wkb for g in gdf.geometry]
    order = sorted(range(len(gdf)), key=lambda i: (key[i], tuple(map(str, gdf.iloc[i, :-1]))))
    return gdf.iloc[order].reset_index(drop=True)
