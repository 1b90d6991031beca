"""``agriseg tile`` through the CLI: outputs on disk, and every bad input as exit code 2."""

import json
import os

import geopandas as gpd
import numpy as np
import rasterio
from cli_helpers import assert_bad_input, run
from conftest import CRS, ORIGIN
from shapely import box


def leftovers(folder):
    return [p for p in os.listdir(folder) if ".part" in p or p.endswith(".old")]


def test_tile_writes_patches_labels_and_index(make_raster, tmp_path):
    img = make_raster(width=130, height=90)
    labels = make_raster("labels.tif", width=130, height=90, count=1, nodata=255)
    out = tmp_path / "tiles"
    r = run("-q", "tile", img, "-o", out, "--patch-size", 64, "--overlap", 16,
            "--labels", labels)
    assert r.exit_code == 0, r.output
    assert r.output.count("\n") == 1 and "6 patches written, 0 skipped" in r.output
    names = sorted(p.name for p in out.glob("field_*.tif"))
    assert len(names) == 6 and names[0] == "field_r0000_c0000.tif"
    assert sorted(p.name for p in (out / "labels").iterdir()) == names
    index = gpd.read_file(out / "index.gpkg", layer="patches")
    assert len(index) == 6 and set(index.label_file) == {f"labels/{n}" for n in names}
    with rasterio.open(out / "labels" / names[-1]) as lab, rasterio.open(labels) as src:
        window = rasterio.windows.Window(130 - 64, 90 - 64, 64, 64)
        np.testing.assert_array_equal(lab.read(1), src.read(1, window=window))
    assert not leftovers(tmp_path)


def test_tile_json_summary(make_raster, tmp_path):
    img = make_raster(width=70, height=50)
    r = run("-q", "tile", img, "-o", tmp_path / "t", "--patch-size", 32, "--overlap", 0,
            "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["written"] == 6 and summary["skipped"] == 0
    assert summary["out_dir"] == str(tmp_path / "t") and summary["labels"] is None


def test_missing_raster(tmp_path):
    r = run("tile", tmp_path / "nope.tif", "-o", tmp_path / "t", "--patch-size", 64)
    assert_bad_input(r, "nope.tif", "not found")
    assert not (tmp_path / "t").exists() and not leftovers(tmp_path)


def test_existing_folder_without_overwrite(make_raster, tmp_path):
    img = make_raster(width=50, height=50)
    out = tmp_path / "t"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = run("tile", img, "-o", out, "--patch-size", 32, "--overlap", 8)
    assert_bad_input(r, str(out), "--overwrite")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    r = run("-q", "tile", img, "-o", out, "--patch-size", 32, "--overlap", 8, "--overwrite")
    assert r.exit_code == 0, r.output
    assert not (out / "keep.txt").exists() and (out / "index.gpkg").exists()
    assert not leftovers(tmp_path)


def test_bad_label_field_lists_fields(make_raster, tmp_path):
    img = make_raster(width=50, height=50)
    x0, y0 = ORIGIN
    gpd.GeoDataFrame({"class_id": [1], "species": ["carrot"]},
                     geometry=[box(x0, y0 - 0.2, x0 + 0.2, y0)], crs=CRS
                     ).to_file(tmp_path / "lab.gpkg", driver="GPKG")
    r = run("tile", img, "-o", tmp_path / "t", "--patch-size", 32, "--overlap", 8, "--labels",
            tmp_path / "lab.gpkg", "--label-field", "klass")
    assert_bad_input(r, "klass", "class_id", "species")
    assert not (tmp_path / "t").exists() and not leftovers(tmp_path)


def test_bad_overlap_is_one_line(make_raster, tmp_path):
    img = make_raster(width=50, height=50)
    r = run("tile", img, "-o", tmp_path / "t", "--patch-size", 32, "--overlap", 32)
    assert_bad_input(r, "overlap 32")
    assert not (tmp_path / "t").exists()


def test_real_carrot_weed_image(carrot_weed, tmp_path):
    img, labels = carrot_weed / "IMG_3438.tif", carrot_weed / "IMG_3438_labels.tif"
    r = run("-q", "tile", img, "-o", tmp_path / "t", "--patch-size", 512, "--overlap", 64,
            "--labels", labels, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["written"] == 12 and summary["skipped"] == 0  # 1632x1224 -> 4 x 3
    with rasterio.open(tmp_path / "t" / "labels" / "IMG_3438_r0002_c0003.tif") as lab, \
            rasterio.open(labels) as src:
        window = rasterio.windows.Window(1632 - 512, 1224 - 512, 512, 512)
        np.testing.assert_array_equal(lab.read(1), src.read(1, window=window))
