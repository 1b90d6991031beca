"""-v/-q before or after the command name, and -vv showing GDAL's own debug messages."""

from pathlib import Path

import pytest
from cli_helpers import run

SAMPLES = Path(__file__).resolve().parents[2] / "sample_tiles"


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_anywhere(make_checkpoint, tmp_path, where):
    ckpt = make_checkpoint(patch_px=128)
    args = ["map", SAMPLES / "field_small.tif", "-m", ckpt, "-o", tmp_path / "out"]
    r = run("-q", *args) if where == "before" else run(*args, "-q")
    assert r.exit_code == 0, r.output
    assert "mapped in" in r.output and "patch/s" not in r.output  # no progress bar


@pytest.mark.parametrize("args", [["-vv", "info", SAMPLES / "field_small.tif"],
                                  ["info", SAMPLES / "field_small.tif", "-vv"],
                                  ["info", SAMPLES / "field_small.tif", "-v", "-v"]])
def test_vv_shows_gdal_debug(args):
    r = run(*args)
    assert r.exit_code == 0, r.output
    assert "GDALOpen(" in r.output, r.output  # GDAL's own CPL_DEBUG line


def test_plain_info_prints_no_debug():
    r = run("info", SAMPLES / "field_small.tif")
    assert r.exit_code == 0 and "GDALOpen(" not in r.output and "debug" not in r.output
