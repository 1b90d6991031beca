"""``agriseg prescribe`` through the CLI: outputs, the printed summary, and bad input."""

import json
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from cli_helpers import assert_bad_input, run
from conftest import weed_field

SAMPLES = Path(__file__).resolve().parents[2] / "sample_tiles"


def test_prescribe_the_sample_tile(tmp_path):
    out = tmp_path / "spray"
    r = run("prescribe", SAMPLES / "field_rgb_labels.tif", "-o", out, "-f", "shp", "-f",
            "isoxml", "-f", "gpkg", "--threshold", "5%", "--heading", "8", "--rate", "120",
            "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert json.loads((out / "prescription.json").read_text()) == report
    assert report["parameters"]["threshold"] == pytest.approx(0.05)
    assert report["parameters"]["heading_deg"] == 8 and report["parameters"]["rate"] == 120
    assert report["outputs"] == {"shp": "prescription.zip", "isoxml": "TASKDATA/TASKDATA.XML",
                                 "gpkg": "prescription.gpkg", "report": "prescription.json"}
    for name in report["outputs"].values():
        assert (out / name).is_file()
    gpkg = gpd.read_file(out / "prescription.gpkg")
    g = report["grids"]["field"]
    assert len(gpkg) == g["cells"] and (gpkg.RATE > 0).sum() == g["cells_sprayed"]


def test_prescribe_prints_a_summary_per_grid(tmp_path):
    mask = weed_field(tmp_path / "mask.tif")
    r = run("prescribe", mask, "-o", tmp_path / "out", "-f", "isoxml", "--rate", "100")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "out" / "prescription.json").read_text())
    g = report["grids"]["isoxml"]
    lines = r.output.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"isoxml grid: {g['cells']} cells")
    assert f"product {g['product']:.2f} l vs {g['broadcast_product']:.2f} l" in lines[0]
    assert f"saves {g['savings_pct']:.1f}%" in lines[0]


def test_existing_folder_needs_overwrite(tmp_path):
    mask = weed_field(tmp_path / "mask.tif")
    out = tmp_path / "out"
    assert run("prescribe", mask, "-o", out).exit_code == 0
    assert_bad_input(run("prescribe", mask, "-o", out, "--rate", "90"), "--overwrite")
    assert json.loads((out / "prescription.json").read_text())["parameters"]["rate"] == 150
    assert run("prescribe", mask, "-o", out, "--rate", "90", "--overwrite").exit_code == 0
    assert json.loads((out / "prescription.json").read_text())["parameters"]["rate"] == 90


def _boundary(path, geom, crs):
    gpd.GeoDataFrame(geometry=[geom], crs=crs).to_file(path)
    return path


def bad_cases(tmp_path):
    """(arguments after MAP, words the error must contain) per bad input."""
    inside = shapely.box(500_001, 4_649_991, 500_009, 4_649_999)
    return {
        "no weed class": ([], ["no weed class", "soil", "--weed-class"]),
        "unknown weed class": (["--weed-class", "thistle"], ["'thistle'", "0=soil"]),
        "boundary in another CRS": (
            ["--boundary", _boundary(tmp_path / "b4326.gpkg", shapely.box(21, 42, 21.1, 42.1),
                                     "EPSG:4326")],
            ["EPSG:4326", "EPSG:32634", "ogr2ogr -t_srs EPSG:32634"]),
        "boundary off the raster": (
            ["--boundary", _boundary(tmp_path / "far.gpkg",
                                     shapely.box(600_000, 4_600_000, 600_100, 4_600_100),
                                     "EPSG:32634")],
            ["does not overlap"]),
        "missing boundary": (["--boundary", tmp_path / "nope.gpkg"], ["not found"]),
        "rate too large": (["--rate", "300000"], ["int32"]),
        "zero cell width": (["--cell-width", "0"], ["cell_width_m 0"]),
        "inside boundary ok": (["--boundary", _boundary(tmp_path / "ok.gpkg", inside,
                                                         "EPSG:32634")], None),
    }


@pytest.mark.parametrize("case", ["no weed class", "unknown weed class",
                                  "boundary in another CRS", "boundary off the raster",
                                  "missing boundary", "rate too large", "zero cell width"])
def test_bad_input_is_one_line_and_no_output(tmp_path, case):
    mask = weed_field(tmp_path / "mask.tif", classes=("soil", "crop", "weed"))
    args, words = bad_cases(tmp_path)[case]
    if case in ("no weed class", "unknown weed class"):
        mask = weed_field(tmp_path / "nochoice.tif", classes=("soil", "crop", "thing"))
    out = tmp_path / "out"
    assert_bad_input(run("prescribe", mask, "-o", out, *args), *words)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_a_good_boundary_passes_the_same_checks(tmp_path):
    mask = weed_field(tmp_path / "mask.tif")
    args, _ = bad_cases(tmp_path)["inside boundary ok"]
    r = run("prescribe", mask, "-o", tmp_path / "out", *args, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["grids"]["field"]["field_area_ha"] == pytest.approx(0.0064)


@pytest.mark.parametrize("value,message", [("5", "write 5% for five percent"),
                                           ("lots", "a percentage like 1%")])
def test_threshold_must_say_what_it_means(tmp_path, value, message):
    mask = weed_field(tmp_path / "mask.tif")
    r = run("prescribe", mask, "-o", tmp_path / "out", "--threshold", value)
    assert r.exit_code == 2 and message in r.output and not (tmp_path / "out").exists()


def test_map_that_is_not_a_class_mask(tmp_path):
    r = run("prescribe", SAMPLES / "field_rgb.tif", "-o", tmp_path / "out")
    assert_bad_input(r, "field_rgb.tif", "3 bands", "not the image")
    r = run("prescribe", tmp_path, "-o", tmp_path / "out")
    assert_bad_input(r, "no mask.tif")
