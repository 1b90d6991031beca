"""``agriseg predict`` through the CLI: results on disk, and every bad input as exit code 2."""

import json
import os
import sys

import numpy as np
import pytest
import rasterio
from cli_helpers import assert_bad_input, run


def no_outputs(folder):
    return not [p for p in os.listdir(folder) if p.startswith("out") or ".part" in p]


@pytest.fixture
def rgb(make_raster):
    return make_raster(width=130, height=90)


@pytest.fixture
def ckpt(make_checkpoint):
    return make_checkpoint()


def test_predict_writes_mask_and_confidence(rgb, ckpt, tmp_path):
    out, conf = tmp_path / "out.tif", tmp_path / "out_conf.tif"
    r = run("-q", "predict", rgb, "-m", ckpt, "-o", out, "--confidence", conf,
            "--patch-size", 64, "--overlap", 16, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["patches"] == 6 and summary["width"] == 130
    with rasterio.open(out) as m, rasterio.open(conf) as c:
        assert m.shape == c.shape == (90, 130)
        assert set(np.unique(m.read(1))) <= {0, 1, 2}


def test_missing_raster(ckpt, tmp_path):
    r = run("predict", tmp_path / "nope.tif", "-m", ckpt, "-o", tmp_path / "out.tif")
    assert_bad_input(r, "nope.tif", "not found")
    assert no_outputs(tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello, not a raster\n", b"II*\x00garbage"])
def test_not_a_raster_or_empty(ckpt, tmp_path, content):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(content)
    r = run("predict", bad, "-m", ckpt, "-o", tmp_path / "out.tif")
    assert_bad_input(r, "bad.tif")
    assert no_outputs(tmp_path)


def test_corrupt_geotiff_data_leaves_no_output(make_raster, ckpt, tmp_path):
    good = make_raster("good.tif", width=600, height=600, blocksize=128)
    data = good.read_bytes()
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(data[: len(data) // 2])  # header intact, half the blocks missing
    r = run("-q", "predict", corrupt, "-m", ckpt, "-o", tmp_path / "out.tif",
            "--patch-size", 128)
    assert_bad_input(r, "corrupt.tif")
    assert no_outputs(tmp_path)


def test_band_count_mismatch(make_raster, ckpt, tmp_path):
    two = make_raster("two.tif", count=2)
    r = run("predict", two, "-m", ckpt, "-o", tmp_path / "out.tif")
    assert_bad_input(r, "two.tif", "2 data bands", "takes 3", "--bands")
    assert no_outputs(tmp_path)


def test_dtype_mismatch(make_raster, ckpt, tmp_path):
    u16 = make_raster("u16.tif", dtype="uint16")
    r = run("predict", u16, "-m", ckpt, "-o", tmp_path / "out.tif", "--input-range", "model")
    assert_bad_input(r, "uint16", "uint8", "--input-range auto")
    r = run("predict", u16, "-m", ckpt, "-o", tmp_path / "out.tif", "--input-range", "9,1")
    assert_bad_input(r, "MIN must be below MAX")
    assert no_outputs(tmp_path)


def test_bands_option_selects_and_validates(make_raster, ckpt, tmp_path):
    five = make_raster("five.tif", count=5)
    r = run("-q", "predict", five, "-m", ckpt, "-o", tmp_path / "out.tif", "--bands", "3,2,1")
    assert r.exit_code == 0, r.output
    r = run("predict", five, "-m", ckpt, "-o", tmp_path / "out2.tif", "--bands", "1,2,9")
    assert_bad_input(r, "band 9 does not exist")


@pytest.mark.parametrize("kind", ["pickle", "garbage", "plain_safetensors"])
def test_bad_checkpoint(rgb, tmp_path, kind):
    import pickle

    import torch
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    if kind == "pickle":
        bad.write_bytes(pickle.dumps({"state_dict": [1, 2, 3]}))
    elif kind == "garbage":
        bad.write_bytes(os.urandom(200))
    else:
        save_file({"w": torch.zeros(3)}, str(bad))
    r = run("predict", rgb, "-m", bad, "-o", tmp_path / "out.tif")
    assert_bad_input(r, "bad.safetensors")
    assert no_outputs(tmp_path)


def test_existing_output_needs_overwrite(rgb, ckpt, tmp_path):
    out = tmp_path / "out.tif"
    out.write_bytes(b"keep me")
    r = run("predict", rgb, "-m", ckpt, "-o", out)
    assert_bad_input(r, "exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    r = run("-q", "predict", rgb, "-m", ckpt, "-o", out, "--overwrite")
    assert r.exit_code == 0
    with rasterio.open(out) as ds:
        assert ds.shape == (90, 130)


def test_output_folder_missing(rgb, ckpt, tmp_path):
    r = run("predict", rgb, "-m", ckpt, "-o", tmp_path / "no" / "such" / "out.tif")
    assert_bad_input(r, "does not exist")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_output_folder_not_writable(rgb, ckpt, tmp_path):
    r = run("predict", rgb, "-m", ckpt, "-o", "/proc/agriseg-out.tif")
    assert_bad_input(r, "not writable")
    if os.geteuid() != 0:  # permission bits do not stop root
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        r = run("predict", rgb, "-m", ckpt, "-o", ro / "out.tif")
        assert_bad_input(r, "not writable")


def test_raster_without_crs_warns_and_output_has_none(make_raster, ckpt, tmp_path):
    src = make_raster("nocrs.tif", crs=None)
    out = tmp_path / "out.tif"
    r = run("predict", src, "-m", ckpt, "-o", out, "--patch-size", 64)
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "no CRS" in r.output
    with rasterio.open(out) as ds:
        assert ds.crs is None


def test_bad_patch_size_for_model(rgb, make_checkpoint, tmp_path):
    ck = make_checkpoint("unet.safetensors", arch="fpn", encoder_name="resnet18")
    r = run("predict", rgb, "-m", ck, "-o", tmp_path / "out.tif", "--patch-size", 100)
    assert_bad_input(r, "patch size 100", "use 96 or 128")
    assert no_outputs(tmp_path)


def test_predict_tta_json_and_bad_value(rgb, ckpt, tmp_path):
    r = run("-q", "predict", rgb, "-m", ckpt, "-o", tmp_path / "m.tif", "--tta", "d4",
            "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["tta"] == "d4"
    bad = run("predict", rgb, "-m", ckpt, "-o", tmp_path / "n.tif", "--tta", "90")
    assert bad.exit_code == 2 and "Invalid value for '--tta'" in bad.output
    assert not (tmp_path / "n.tif").exists()
