"""describe_raster / format_info: what ``agriseg info`` reports about generated rasters."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from agriseg.errors import InputNotFoundError, RasterError
from agriseg.raster.info import describe_raster, format_info


def test_uint8_rgb_with_descriptions(make_raster):
    path = make_raster("rgb.tif", width=300, height=200, descriptions=["Red", "Green", "Blue"])
    info = describe_raster(path)
    assert info["path"] == str(path)
    assert info["driver"] == "GTiff"
    assert (info["width"], info["height"], info["count"]) == (300, 200, 3)
    assert [b["index"] for b in info["bands"]] == [1, 2, 3]
    assert [b["name"] for b in info["bands"]] == ["red", "green", "blue"]
    assert [b["description"] for b in info["bands"]] == ["Red", "Green", "Blue"]
    assert {b["dtype"] for b in info["bands"]} == {"uint8"}
    assert info["crs"]["epsg"] == 32634
    assert info["crs"]["name"] == "WGS 84 / UTM zone 34N"
    assert info["crs"]["units"] == "metre"
    assert info["pixel_size"] == pytest.approx([0.01, 0.01])
    assert info["pixel_size_m"] == pytest.approx(0.01)
    assert info["transform"] == pytest.approx([0.01, 0, 500000.0, 0, -0.01, 4650000.0])
    assert info["bounds"] == pytest.approx([500000.0, 4649998.0, 500003.0, 4650000.0])
    assert info["nodata"] == {"value": None, "alpha_band": None, "mask": None}
    assert info["layout"]["block_shape"] == [256, 256]
    assert info["layout"]["tiled"] is True
    assert info["compression"] == "deflate"
    assert info["overviews"] == []
    assert info["notes"] == []
    text = format_info(info)
    assert "size:         300 x 200 px, 3 bands" in text
    assert "crs:          EPSG:32634 (WGS 84 / UTM zone 34N)" in text
    assert "pixel size:   0.01 x 0.01 metre (~0.01 m)" in text
    assert "no-data:      none" in text
    assert "tiles of 256 x 256 px" in text
    assert "overviews:    none" in text


def test_uint16_four_bands_with_nodata(make_raster):
    path = make_raster("ms.tif", count=4, dtype="uint16", nodata=0,
                       descriptions=["red", "green", "blue", "nir"])
    info = describe_raster(path)
    assert info["count"] == 4
    assert [b["dtype"] for b in info["bands"]] == ["uint16"] * 4
    assert [b["nodata"] for b in info["bands"]] == [0.0] * 4
    assert info["bands"][3]["name"] == "nir"
    assert info["bands"][0]["mask_flags"] == ["nodata"]
    assert info["nodata"] == {"value": 0.0, "alpha_band": None, "mask": None}
    text = format_info(info)
    assert "no-data:      value 0" in text
    assert "nir" in text and "nodata 0" in text


def test_float32_nan_nodata_stays_valid_json(make_raster):
    path = make_raster("f.tif", count=1, dtype="float32", nodata=float("nan"))
    info = describe_raster(path)
    assert info["bands"][0]["dtype"] == "float32"
    assert info["nodata"]["value"] == "nan"
    # strict JSON (no bare NaN) so any consumer can parse it
    assert json.loads(json.dumps(info, allow_nan=False))["nodata"]["value"] == "nan"
    assert "size:         300 x 200 px, 1 band\n" in format_info(info)


def test_alpha_band(make_raster):
    path = make_raster("rgba.tif", count=4, alpha=True)
    info = describe_raster(path)
    assert info["nodata"]["alpha_band"] == 4
    assert info["bands"][3]["colorinterp"] == "alpha"
    assert info["bands"][3]["name"] == "alpha"
    assert "alpha" in info["bands"][0]["mask_flags"]
    assert "no-data:      alpha band 4" in format_info(info)


def test_internal_mask(tmp_path):
    path = tmp_path / "masked.tif"
    data = np.full((3, 64, 64), 7, dtype="uint8")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(
            path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as dst:
        dst.write(data)
        mask = np.full((64, 64), 255, dtype="uint8")
        mask[:10] = 0
        dst.write_mask(mask)
    info = describe_raster(path)
    assert info["nodata"] == {"value": None, "alpha_band": None, "mask": "internal"}
    assert "internal mask band" in format_info(info)


def test_no_crs(make_raster):
    path = make_raster("plain.tif", crs=None, width=40, height=30)
    info = describe_raster(path)
    assert info["crs"] is None
    assert info["pixel_size_m"] is None
    assert info["pixel_size_units"] == "pixels"
    assert info["bounds"] == pytest.approx([0, 30, 40, 0])
    assert any(n.startswith("no CRS") for n in info["notes"])
    assert any(n.startswith("not georeferenced") for n in info["notes"])
    text = format_info(info)
    assert "crs:          none" in text
    assert "note: no CRS" in text


def test_geographic_crs_pixel_size_in_metres(tmp_path):
    path = tmp_path / "geo.tif"
    with rasterio.open(path, "w", driver="GTiff", width=20, height=20, count=3, dtype="uint8",
                       crs="EPSG:4326",
                       transform=rasterio.transform.from_origin(21.0, 45.0, 1e-7, 1e-7)) as dst:
        dst.write(np.ones((3, 20, 20), dtype="uint8"))
    info = describe_raster(path)
    assert info["crs"]["epsg"] == 4326 and info["crs"]["geographic"] is True
    assert info["pixel_size_units"] == "degree"
    assert info["pixel_size"] == pytest.approx([1e-7, 1e-7])
    # at 45 deg N: 1e-7 deg is ~7.9 mm east-west and ~11.1 mm north-south
    assert info["pixel_size_m"] == pytest.approx(0.0095, abs=0.0003)
    assert any("approximate" in n for n in info["notes"])


def test_overviews_and_striped_layout(tmp_path):
    path = tmp_path / "ovr.tif"
    with rasterio.open(path, "w", driver="GTiff", width=128, height=96, count=1, dtype="uint8",
                       crs="EPSG:32634", compress="lzw",
                       transform=rasterio.transform.from_origin(0, 96, 0.05, 0.05)) as dst:
        dst.write(np.arange(128 * 96, dtype="uint32").reshape(1, 96, 128).astype("uint8"))
        dst.build_overviews([2, 4])
    info = describe_raster(path)
    assert info["overviews"] == [2, 4]
    assert info["layout"]["tiled"] is False
    assert info["layout"]["block_shape"][1] == 128  # strips span the full width
    assert info["compression"] == "lzw"
    assert info["pixel_size_m"] == pytest.approx(0.05)
    text = format_info(info)
    assert "overviews:    2x, 4x" in text
    assert "strips of 128 x" in text


def test_tags_reported_classes_first(make_raster, tmp_path):
    path = make_raster("labels.tif", count=1)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(classes='["soil", "crop", "weed"]', survey="2024-05")
    info = describe_raster(path)
    assert json.loads(info["tags"]["classes"]) == ["soil", "crop", "weed"]
    assert info["tags"]["survey"] == "2024-05"
    text = format_info(info)
    assert text.index('classes=["soil"') < text.index("survey=2024-05")


def test_bad_inputs_raise_agriseg_errors(tmp_path, make_raster):
    with pytest.raises(InputNotFoundError, match="not found"):
        describe_raster(tmp_path / "missing.tif")
    text = tmp_path / "x.tif"
    text.write_text("not a raster")
    with pytest.raises(RasterError, match="not a readable raster"):
        describe_raster(text)
