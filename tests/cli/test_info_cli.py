"""``agriseg info`` through the CLI: text, --json, --model/--bands, and one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agriseg.cli.main import cli
from agriseg.raster.info import describe_raster


@pytest.fixture
def run():
    def invoke(*args: str):
        return CliRunner().invoke(cli, ["info", *map(str, args)])

    return invoke


def test_text_report(run, make_raster):
    path = make_raster(width=120, height=80, nodata=0, descriptions=["red", "green", "blue"])
    result = run(path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == str(path)
    assert "size:         120 x 80 px, 3 bands" in lines
    assert "crs:          EPSG:32634 (WGS 84 / UTM zone 34N)" in lines
    assert "no-data:      value 0" in lines
    assert "fits" not in result.stdout  # no model, no fit verdict


def test_json_matches_library(run, make_raster):
    path = make_raster(count=4, alpha=True)
    result = run(path, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data == json.loads(json.dumps(describe_raster(path)))
    assert data["nodata"]["alpha_band"] == 4
    assert data["pixel_size_m"] == pytest.approx(0.01)
    assert "model" not in data and "fit" not in data


def test_model_fits(run, make_raster, make_checkpoint):
    result = run(make_raster(descriptions=["red", "green", "blue"]), "--model",
                 make_checkpoint())
    assert result.exit_code == 0, result.output
    assert "fits: yes (bands 1 (red), 2 (green), 3 (blue))" in result.stdout
    assert "  bands:      red, green, blue (uint8)" in result.stdout


def test_four_bands_fit_rgb_model_by_name_json(run, make_raster, make_checkpoint):
    raster = make_raster(count=4, descriptions=["red", "green", "blue", "nir"])
    result = run(raster, "-m", make_checkpoint(), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["fit"]["fits"] is True
    assert data["fit"]["bands"] == [1, 2, 3]
    assert data["fit"]["band_names"] == ["red", "green", "blue"]
    assert data["model"]["bands"] == ["red", "green", "blue"]


def test_explicit_bands(run, make_raster, make_checkpoint):
    raster = make_raster(count=4, descriptions=["nir", "blue", "green", "red"])
    result = run(raster, "-m", make_checkpoint(), "--bands", "4,3,2")
    assert result.exit_code == 0, result.output
    assert "fits: yes (bands 4 (red), 3 (green), 2 (blue))" in result.stdout


def test_misfit_is_reported_not_refused(run, make_raster, make_checkpoint):
    raster = make_raster(dtype="uint16", descriptions=["red", "green", "blue"])
    result = run(raster, "--model", make_checkpoint(dtype="uint8"), "--input-range", "model")
    assert result.exit_code == 0, result.output
    assert "fits: no" in result.stdout
    assert "  problem: data type uint16 does not fit the model" in result.stdout
    data = json.loads(run(raster, "--model", make_checkpoint("m.safetensors"), "--json",
                          "--input-range", "model").stdout)
    assert data["fit"]["fits"] is False and len(data["fit"]["problems"]) == 1
    adapted = run(raster, "--model", make_checkpoint("m2.safetensors"))  # --input-range auto
    assert adapted.exit_code == 0 and "fits: yes" in adapted.stdout
    assert "  adapted: data type uint16, model trained on uint8: each band's 2-98% " \
        "percentiles mapped" in adapted.stdout


def test_help_says_misfit_exits_zero(run):
    result = run("--help")
    assert result.exit_code == 0
    assert "exits 0 even when the raster does not fit" in " ".join(result.stdout.split())


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_missing_file(run, tmp_path):
    line = _one_line_error(run(tmp_path / "nope.tif"))
    assert line.startswith("Error: ") and line.endswith("nope.tif: file not found")


def test_text_file_named_tif(run, tmp_path):
    fake = tmp_path / "x.tif"
    fake.write_text("hello, I am not a GeoTIFF\n")
    line = _one_line_error(run(fake))
    assert line.startswith(f"Error: {fake}: not a readable raster")


def test_pickle_model_refused(run, make_raster, tmp_path):
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"\x80\x04\x95" + b"\x00" * 32)
    line = _one_line_error(run(make_raster(), "--model", pickle))
    assert "pickle" in line and "never unpickles" in line


def test_missing_model(run, make_raster, tmp_path):
    line = _one_line_error(run(make_raster(), "--model", tmp_path / "gone.safetensors"))
    assert line.endswith("gone.safetensors: checkpoint not found")


def test_bands_without_model_is_a_usage_error(run, make_raster):
    result = run(make_raster(), "--bands", "1,2,3")
    assert result.exit_code == 2
    assert "--bands only makes sense with --model" in result.stderr
