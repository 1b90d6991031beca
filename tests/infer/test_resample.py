"""Rasters at another ground resolution than the model's: read at the model's, written back on
their own grid (``--resample auto``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling

from agriseg.errors import ConfigError
from agriseg.infer.pipeline import predict_raster
from agriseg.infer.regrid import BackToInput
from agriseg.infer.stitcher import FinishedRows
from agriseg.jobs.fieldmap import map_field
from agriseg.raster.resample import ResamplePlan, nearest_index, plan_resample
from tests.conftest import write_raster

SAMPLE = "sample_tiles/field_rgb.tif"  # 1 cm/px, like the default model


def upsampled(src, dst, factor: int = 2):
    """``src`` enlarged ``factor`` times by GDAL (bilinear): the same field at a finer pixel."""
    with rasterio.open(src) as ds:
        profile = ds.profile
        data = ds.read(out_shape=(ds.count, ds.height * factor, ds.width * factor),
                       resampling=Resampling.bilinear)
        profile.update(width=ds.width * factor, height=ds.height * factor,
                       transform=ds.transform * Affine.scale(1 / factor), tiled=True,
                       blockxsize=256, blockysize=256)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return dst


def iou(a, b, c):
    return ((a == c) & (b == c)).sum() / max(1, ((a == c) | (b == c)).sum())


@pytest.fixture(scope="module")
def masks(tmp_path_factory):
    """The default model on the sample field, on a 2x copy with and without resampling."""
    tmp = tmp_path_factory.mktemp("resample")
    up = upsampled(SAMPLE, tmp / "up.tif")
    out = {}
    for name, src, mode in (("orig", SAMPLE, "auto"), ("auto", up, "auto"),
                            ("off", up, "off")):
        res = predict_raster(src, tmp / f"{name}.tif", confidence=tmp / f"{name}_conf.tif",
                             resample=mode)
        out[name] = (tmp / f"{name}.tif", res)
    return out


def test_a_2x_raster_maps_like_the_original(masks):
    orig_path, orig = masks["orig"]
    assert orig.resample is None  # 1 cm/px like the model: read as it is
    with rasterio.open(orig_path) as ds:
        expected = ds.read(1)
    got = {}
    for name in ("auto", "off"):
        path, res = masks[name]
        with rasterio.open(path) as ds, rasterio.open(SAMPLE) as src:
            assert (ds.width, ds.height) == (2 * src.width, 2 * src.height)
            assert ds.transform == src.transform * Affine.scale(0.5) and ds.crs == src.crs
            got[name] = ds.read(1, out_shape=expected.shape, resampling=Resampling.nearest)
    auto, off = masks["auto"][1], masks["off"][1]
    assert auto.resample["model_grid_size"] == [orig.width, orig.height]
    assert auto.resample["factor"] == 0.5 and auto.patches == orig.patches
    assert off.resample is None and off.patches > 2 * orig.patches
    assert len(np.unique(expected)) == 3
    agree = {k: (v == expected).mean() for k, v in got.items()}
    assert agree["auto"] >= 0.98, agree
    # without resampling the model sees plants twice their trained size: visibly worse
    wrong = {k: int((v != expected).sum()) for k, v in got.items()}
    assert wrong["off"] >= 2.5 * wrong["auto"], wrong
    weed = {k: iou(v, expected, 2) for k, v in got.items()}
    assert weed["off"] < weed["auto"] - 0.1, weed


def test_confidence_comes_back_on_the_input_grid(masks):
    path, _ = masks["auto"]
    with rasterio.open(path) as m, rasterio.open(str(path).replace(".tif", "_conf.tif")) as c:
        assert (c.width, c.height, c.transform) == (m.width, m.height, m.transform)
        mask, conf = m.read(1), c.read(1)
    assert ((mask == 255) == (conf == 255)).all()
    assert conf[mask != 255].min() >= 33


class Sink:
    def __init__(self):
        self.rows = []

    def write(self, rows):
        self.rows.extend(rows)


def test_back_to_input_is_nearest_whatever_the_strips():
    rng = np.random.default_rng(0)
    for fx, fy, h, w in ((0.5, 0.5, 37, 29), (2.0, 3.0, 23, 17), (0.37, 1.6, 50, 41)):
        mh, mw = int(np.ceil(h * fy)), int(np.ceil(w * fx))
        model_classes = rng.integers(0, 5, (mh, mw)).astype(np.uint8)
        model_conf = rng.integers(0, 101, (mh, mw)).astype(np.uint8)
        plan = ResamplePlan(fx, fy, mw, mh, Affine.identity(), 1.0, 1.0)
        sink = Sink()
        back = BackToInput(sink, plan, h, w)
        y = 0
        while y < mh:  # strips of random height, as the stitcher releases them
            n = int(rng.integers(1, 6))
            back.write([FinishedRows(y, model_classes[y:y + n], model_conf[y:y + n])])
            y += n
        rows, cols = nearest_index(h, fy, mh), nearest_index(w, fx, mw)
        got = sink.rows
        assert [r.y0 for r in got] == sorted(r.y0 for r in got) and got[0].y0 == 0
        classes = np.concatenate([r.classes for r in got])
        conf = np.concatenate([r.confidence for r in got])
        np.testing.assert_array_equal(classes, model_classes[rows][:, cols])
        np.testing.assert_array_equal(conf, model_conf[rows][:, cols])
        assert len(back.classes) <= 6  # only the model rows still needed are held


def test_when_a_raster_is_resampled(tmp_path):
    data = np.zeros((3, 40, 50), dtype=np.uint8)
    cases = {0.0105: None, 0.0091: None, 0.0115: 0.0115, 0.005: 0.005, 0.04: 0.04}
    for px, expect in cases.items():
        path = write_raster(tmp_path / f"{px}.tif", data, pixel_size=px)
        with rasterio.open(path) as ds:
            plan = plan_resample(ds, 0.01, "auto")
            assert (plan is None) == (expect is None), px
            if plan is not None:
                assert plan.input_px_m == pytest.approx(px)
                assert plan.width == int(np.ceil(50 * px / 0.01))
                assert plan.transform.a == pytest.approx(0.01)
                assert plan.shrinking == (px < 0.01)
            assert plan_resample(ds, 0.01, "off") is None
            assert plan_resample(ds, None, "auto") is None
            with pytest.raises(ConfigError, match="unknown resample mode"):
                plan_resample(ds, 0.01, "yes")
    no_crs = write_raster(tmp_path / "nocrs.tif", data, crs=None)
    with rasterio.open(no_crs) as ds:
        assert plan_resample(ds, 0.01, "auto") is None
    # a geographic raster: 1e-7 degrees is about 1 cm at 45 N
    geo = tmp_path / "geo.tif"
    with rasterio.open(geo, "w", driver="GTiff", width=50, height=40, count=3, dtype="uint8",
                       crs="EPSG:4326",
                       transform=Affine(2e-7, 0, 10.0, 0, -1.4e-7, 45.0)) as out:
        out.write(data)
    with rasterio.open(geo) as ds:
        plan = plan_resample(ds, 0.01, "auto")
        assert plan is not None and plan.factor_x == pytest.approx(2e-7 * 78710 / 0.01, rel=0.01)
        assert plan.factor_y == pytest.approx(1.4e-7 * 111132 / 0.01, rel=0.01)


def test_nodata_and_a_coarse_raster(make_checkpoint, tmp_path):
    """A raster coarser than the model (enlarged on reading) keeps its no-data exactly."""
    rng = np.random.default_rng(2)
    data = rng.integers(1, 255, (3, 60, 80)).astype(np.uint8)
    data[:, 10:30, 20:50] = 0
    src = write_raster(tmp_path / "coarse.tif", data, pixel_size=0.03, nodata=0)
    ckpt = make_checkpoint(patch_px=64)
    res = predict_raster(src, tmp_path / "m.tif", model=ckpt, patch_px=64, overlap_px=16)
    assert res.resample["factor"] == 3.0 and res.resample["resampling"] == "bilinear"
    assert res.resample["model_grid_size"] == [240, 180]
    with rasterio.open(tmp_path / "m.tif") as m:
        mask = m.read(1)
        assert (m.width, m.height) == (80, 60)
    nodata = (data == 0).all(axis=0)
    # the model grid's edge pixels straddle the no-data border; inside it all agree
    inner = np.zeros_like(nodata)
    inner[11:29, 21:49] = True
    assert (mask[inner] == 255).all()
    assert (mask[~nodata] != 255).mean() > 0.97
    assert res.nodata_pixels == (mask == 255).sum()


def test_summary_records_the_model_grid(tmp_path):
    up = upsampled("sample_tiles/field_small.tif", tmp_path / "up.tif")
    res = map_field(up, tmp_path / "map", backend="torch")
    params = json.loads((tmp_path / "map" / "summary.json").read_text())["parameters"]
    assert params["resample"] == "auto" and params["input_range"] == "auto"
    assert params["resampled"]["model_grid_size"] == [300, 250]
    assert params["resampled"]["back_to_input"] == "nearest"
    assert params["input_range_applied"] is None
    assert res.summary["input"]["width"] == 600
