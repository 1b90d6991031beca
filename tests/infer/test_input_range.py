"""16-bit and float imagery for 8-bit models: ``--input-range auto|model|MIN,MAX``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from agriseg.errors import ConfigError, ModelMismatchError, RasterError
from agriseg.infer.fit import input_scaling, model_range
from agriseg.infer.pipeline import predict_raster
from agriseg.jobs.fieldmap import map_field
from agriseg.models.card import Normalization
from agriseg.models.default import model_or_default
from agriseg.models.header import read_card
from agriseg.options import PredictOptions, parse_input_range
from agriseg.raster import ranges
from agriseg.raster.io import MaskSource
from agriseg.raster.ranges import percentile_range
from tests.conftest import write_raster

SAMPLE = "sample_tiles/field_rgb.tif"


@pytest.fixture(scope="module")
def sample():
    with rasterio.open(SAMPLE) as ds:
        return ds.read(), ds.profile


def write_as(path, data, profile, dtype, nodata=None):
    p = dict(profile, dtype=dtype, nodata=nodata, tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **p) as out:
        out.write(data.astype(dtype))
    return path


def read_mask(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.fixture(scope="module")
def reference(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("ranges") / "u8.tif"
    predict_raster(SAMPLE, out)
    return read_mask(out)


def test_16_bit_and_float_imagery_map_like_the_8_bit_original(sample, reference, tmp_path):
    data, profile = sample
    # a 12-bit camera: the same scene in 0..4095 with an offset
    u16 = write_as(tmp_path / "u16.tif", data.astype(np.float64) * 16 + 40, profile, "uint16")
    f32 = write_as(tmp_path / "f32.tif", data / 255.0, profile, "float32")
    given = predict_raster(u16, tmp_path / "given.tif", input_range="40,4120")
    assert given.input_range["mode"] == "given" and given.input_range["high"] == [4120] * 3
    assert (read_mask(tmp_path / "given.tif") == reference).mean() > 0.999
    for name, src in (("u16", u16), ("f32", f32)):
        res = predict_raster(src, tmp_path / f"{name}_auto.tif")
        assert res.input_range["mode"] == "auto"
        assert res.input_range["clip"] == [0, 255]
        assert res.input_range["target_high"][0] == pytest.approx(180.533)  # mean + 2 std
        assert res.input_range["source"] == "whole raster"  # small enough to read whole
        agree = (read_mask(tmp_path / f"{name}_auto.tif") == reference).mean()
        # a 2-98% stretch onto the training data's mean +- 2 std, not the camera's exact range
        assert agree > 0.95, (name, agree)
    with pytest.raises(ModelMismatchError, match="--input-range auto"):
        predict_raster(u16, tmp_path / "strict.tif", input_range="model")
    assert not (tmp_path / "strict.tif").exists()


def test_nan_and_nodata_stay_nodata(sample, tmp_path):
    data, profile = sample
    f = data / 255.0
    f[:, 100:200, 300:500] = np.nan  # NaN in every band
    f[0, 400:450, 50:90] = np.nan  # NaN in one band: the pixel is still valid
    src = write_as(tmp_path / "nan.tif", f, profile, "float32")
    res = predict_raster(src, tmp_path / "m.tif")
    mask = read_mask(tmp_path / "m.tif")
    assert (mask[100:200, 300:500] == 255).all()
    assert (mask[400:450, 50:90] != 255).all()
    assert res.nodata_pixels == 100 * 200
    u16 = data.astype(np.uint16) * 200 + 100
    u16[:, :50, :] = 0
    src = write_as(tmp_path / "nd.tif", u16, profile, "uint16", nodata=0)
    res = predict_raster(src, tmp_path / "m2.tif")
    assert res.input_range["low"][0] >= 100  # the no-data zeros are not part of the range
    assert (read_mask(tmp_path / "m2.tif")[:50] == 255).all()


def test_statistics_come_from_overviews_or_a_sample(sample, tmp_path, monkeypatch):
    data, profile = sample
    monkeypatch.setattr(ranges, "SAMPLE_PX", 64 * 64 * 4)  # the sample field counts as big
    u16 = data.astype(np.uint16) * 100
    plain = write_as(tmp_path / "plain.tif", u16, profile, "uint16")
    reads = []
    with rasterio.open(plain) as ds:
        real_read = ds.read

        def counting(*a, **kw):
            out = real_read(*a, **kw)
            reads.append(out[0].size)
            return out

        ds.read = counting
        lo, hi, source = percentile_range(ds, [1, 2, 3], MaskSource.of(ds, [1, 2, 3]))
    assert source == "sample of 4 windows of 64 px"
    assert sum(reads) == 4 * 64 * 64  # never the whole raster
    assert all(lo[i] < hi[i] for i in range(3))
    with rasterio.open(plain, "r+") as ds:
        ds.build_overviews([2, 4, 8])
    with rasterio.open(plain) as ds:
        lo2, hi2, source = percentile_range(ds, [1, 2, 3], MaskSource.of(ds, [1, 2, 3]))
    assert source == "overview 1/4"  # the finest level within 4x the sample
    full = np.percentile(u16.reshape(3, -1), [2, 98], axis=1)
    np.testing.assert_allclose(lo2, full[0], rtol=0.1)
    np.testing.assert_allclose(hi2, full[1], rtol=0.1)


def test_model_ranges_and_scaling_maths(make_checkpoint, tmp_path):
    card = read_card(model_or_default(None))  # normalization measured on its training data
    assert model_range(card)[0][0] == pytest.approx(card.normalization.mean[0]
                                                    - 2 * card.normalization.std[0])
    ckpt = make_checkpoint(dtype="uint16", normalization=Normalization(
        mean=(1000, 2000, 3000), std=(100, 200, 2000)))
    lo, hi = model_range(read_card(ckpt))
    assert lo == (800, 1600, 0) and hi == (1200, 2400, 7000)  # inside uint16
    scaled = make_checkpoint("s.safetensors", normalization=Normalization.from_scale(255, 3))
    assert model_range(read_card(scaled)) == ((0.0,) * 3, (255.0,) * 3)
    data = np.array([[[0.0, 50.0, 100.0, 200.0]]], dtype=np.float32)
    src = write_raster(tmp_path / "f.tif", np.repeat(data, 3, axis=0))
    with rasterio.open(src) as ds:
        s = input_scaling(ds, [1, 2, 3], card, "50,150")
        assert input_scaling(ds, [1, 2, 3], card, "model") is None
    out = s.apply(np.repeat(data, 3, axis=0))
    np.testing.assert_allclose(out[0, 0], [0, 0, 127.5, 255])  # clipped to what uint8 holds
    assert model_range(card, full=True) == ((0.0,) * 3, (255.0,) * 3)
    u8 = write_raster(tmp_path / "u8.tif", np.zeros((3, 4, 4), np.uint8))
    with rasterio.open(u8) as ds:
        assert input_scaling(ds, [1, 2, 3], card, "auto") is None  # dtype fits: as it is


def test_a_band_without_valid_pixels_is_one_clear_error(tmp_path):
    src = write_raster(tmp_path / "empty.tif", np.full((3, 8, 8), np.nan, np.float32))
    with rasterio.open(src) as ds, pytest.raises(RasterError, match="--input-range MIN,MAX"):
        percentile_range(ds, [1, 2, 3], MaskSource.of(ds, [1, 2, 3]))


def test_option_values():
    assert parse_input_range("AUTO") == "auto" and parse_input_range("model") == "model"
    assert parse_input_range(" 0, 4095 ") == "0,4095" and parse_input_range((0, 1.5)) == "0,1.5"
    for bad in ("0..4095", "5,1", "nan,3", "1,2,3", ""):
        with pytest.raises(ConfigError, match="input range"):
            PredictOptions(input_range=bad)


def test_summary_records_the_mapping(sample, tmp_path):
    data, profile = sample
    u16 = write_as(tmp_path / "u16.tif", data[:, :250, :300].astype(np.uint16) * 100,
                   dict(profile, width=300, height=250), "uint16")
    map_field(u16, tmp_path / "map", backend="torch")
    params = json.loads((tmp_path / "map" / "summary.json").read_text())["parameters"]
    applied = params["input_range_applied"]
    assert applied["mode"] == "auto" and applied["source"] == "whole raster"
    assert len(applied["low"]) == 3 and applied["clip"] == [0, 255]
