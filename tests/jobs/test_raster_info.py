"""``raster_info``: the raster's description plus whether it fits a model card."""

from __future__ import annotations

import pytest

from agriseg.errors import CheckpointError
from agriseg.jobs.info import format_raster_info, raster_info


def test_model_fits(make_raster, make_checkpoint):
    raster = make_raster(descriptions=["red", "green", "blue"])
    info = raster_info(raster, model=make_checkpoint(patch_px=64))
    assert info["model"]["bands"] == ["red", "green", "blue"]
    assert info["model"]["classes"] == ["soil", "crop", "weed"]
    assert info["model"]["arch"]["arch"] == "pixel"
    assert (info["model"]["patch_px"], info["model"]["pixel_size_m"]) == (64, 0.01)
    assert info["fit"] == {"fits": True, "bands": [1, 2, 3],
                           "band_names": ["red", "green", "blue"], "problems": [],
                           "warnings": [], "adapted": []}
    text = format_raster_info(info)
    assert "fits: yes (bands 1 (red), 2 (green), 3 (blue))" in text
    assert "  classes:    soil, crop, weed" in text


def test_model_selects_bands_by_name(make_raster, make_checkpoint):
    raster = make_raster(count=4, descriptions=["nir", "red", "green", "blue"])
    info = raster_info(raster, model=make_checkpoint())
    assert info["fit"]["fits"] is True
    assert info["fit"]["bands"] == [2, 3, 4]
    assert info["fit"]["band_names"] == ["red", "green", "blue"]


def test_model_explicit_bands(make_raster, make_checkpoint):
    raster = make_raster(count=4)
    info = raster_info(raster, model=make_checkpoint(), bands=[3, 2, 1])
    assert info["fit"]["fits"] is True and info["fit"]["bands"] == [3, 2, 1]
    bad = raster_info(raster, model=make_checkpoint("m2.safetensors"), bands=[1, 9, 2])
    assert bad["fit"]["fits"] is False
    assert "band 9 does not exist" in bad["fit"]["problems"][0]


def test_model_dtype_problem_and_pixel_size_warning(make_raster, make_checkpoint):
    raster = make_raster(dtype="uint16", pixel_size=0.05, descriptions=["red", "green", "blue"])
    info = raster_info(raster, model=make_checkpoint(dtype="uint8"), resample="off",
                       input_range="model")
    fit = info["fit"]
    assert fit["fits"] is False
    assert len(fit["problems"]) == 1 and "data type uint16" in fit["problems"][0]
    assert len(fit["warnings"]) == 1 and "pixel size 0.05 m is 5x" in fit["warnings"][0]
    text = format_raster_info(info)
    assert "fits: no\n  problem: data type uint16 does not fit the model" in text
    assert "  warning: pixel size 0.05 m" in text


def test_what_prediction_adapts_is_reported(make_raster, make_checkpoint):
    raster = make_raster(dtype="uint16", pixel_size=0.05, descriptions=["red", "green", "blue"])
    fit = raster_info(raster, model=make_checkpoint(dtype="uint8"))["fit"]  # auto, auto
    assert fit["fits"] is True and not fit["problems"] and not fit["warnings"]
    assert len(fit["adapted"]) == 2
    assert "data type uint16, model trained on uint8" in fit["adapted"][0]
    assert "pixel size 0.05 m is 5x the model's 0.01 m: read at the model's" in fit["adapted"][1]
    near = make_raster("near.tif", pixel_size=0.0105, descriptions=["red", "green", "blue"])
    assert raster_info(near, model=make_checkpoint("m.safetensors"))["fit"]["adapted"] == []


def test_a_pickle_is_never_read_as_a_model(tmp_path, make_raster):
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"\x80\x04\x95fake pickle")
    with pytest.raises(CheckpointError, match="never unpickles"):
        raster_info(make_raster(), model=pickle)


def test_a_rotated_raster_is_not_resampled_and_says_so(make_checkpoint, tmp_path):
    """info reports exactly what prediction does: a rotated grid is read as it is."""
    import numpy as np
    import rasterio
    from affine import Affine

    path = tmp_path / "rotated.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=30, count=3, dtype="uint8",
                       crs="EPSG:32634", transform=Affine.rotation(20) * Affine.scale(0.05, -0.05)
                       ) as out:
        out.write(np.ones((3, 30, 40), np.uint8))
        for i, name in enumerate(("red", "green", "blue"), 1):
            out.set_band_description(i, name)
    fit = raster_info(path, model=make_checkpoint())["fit"]
    assert fit["adapted"] == []
    assert len(fit["warnings"]) == 1 and "is 4.7x the model's" in fit["warnings"][0]
    assert "a rotated grid is not resampled" in fit["warnings"][0]


def test_info_reads_an_exported_onnx_model_without_pytorch(tmp_path):
    import subprocess
    import sys

    pytest.importorskip("onnxruntime")
    from agriseg.models.onnx_export import export_onnx

    onnx = export_onnx(None, tmp_path / "default.onnx")
    code = ("import sys; from agriseg.jobs.info import raster_info\n"
            f"info = raster_info('sample_tiles/field_small.tif', model={str(onnx)!r})\n"
            "assert info['fit']['fits'] and info['model']['classes'] == ['soil', 'crop', 'weed']\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
