"""``agriseg map`` and ``agriseg vectorize`` through the CLI."""

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from cli_helpers import assert_bad_input, run

SAMPLES = Path(__file__).resolve().parents[2] / "sample_tiles"


@pytest.mark.parametrize("fmt,suffix", [("gpkg", ".gpkg"), ("shp", ".shp")])
def test_map_writes_every_documented_file(make_checkpoint, tmp_path, fmt, suffix):
    ckpt = make_checkpoint(patch_px=128)
    out = tmp_path / "field1"
    r = run("-q", "map", SAMPLES / "field_small.tif", "-m", ckpt, "-o", out, "--format", fmt,
            "--min-area", "0.0005", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    names = {"mask.tif", "confidence.tif", f"fields{suffix}", "summary.json", "README.txt",
             "mask.qml", "mask.tif.aux.xml", "confidence.qml"}  # styles: QGIS opens them so
    if fmt != "gpkg":
        names.add("fields.qml")  # a GeoPackage keeps its style inside
    assert names <= {p.name for p in out.iterdir()}
    readme = (out / "README.txt").read_text()
    assert all(n in readme for n in names - {"README.txt"})
    assert json.loads((out / "summary.json").read_text()) == summary
    layers = [name for name, _ in pyogrio.list_layers(out / f"fields{suffix}")]
    assert layers[0] == ("field_small_class_polygons" if fmt == "gpkg" else "fields")
    assert summary["outputs"]["polygons_layer"] == (layers[0] if fmt == "gpkg" else None)
    assert layers[1:] == (["layer_styles"] if fmt == "gpkg" else [])
    gdf = gpd.read_file(out / f"fields{suffix}", layer=layers[0])
    with rasterio.open(out / "mask.tif") as m:
        counts = np.bincount(m.read(1).ravel(), minlength=256)
        px_m2 = abs(m.transform.a * m.transform.e)
    assert set(summary["classes"]) == {"soil", "crop", "weed"}  # background included
    assert set(summary["areas"]) == {"area_m2_pixels", "area_m2_polygons"}
    for name, c in summary["classes"].items():
        assert c["pixels"] == counts[c["class_id"]]
        assert c["area_m2_pixels"] == pytest.approx(counts[c["class_id"]] * px_m2, rel=1e-9)
        assert c["area_ha_pixels"] == pytest.approx(c["area_m2_pixels"] / 10_000)
        assert c["polygons"] == int((gdf.class_name == name).sum())
        if name == "soil":  # background never becomes polygons: no polygon area to report
            assert c["area_m2_polygons"] is None and c["polygons"] == 0
            continue
        got = gdf.loc[gdf.class_name == name, "area_m2"].sum()
        assert c["area_m2_polygons"] == pytest.approx(got, rel=1e-9, abs=1e-12)
        assert c["area_ha_polygons"] == pytest.approx(got / 10_000, rel=1e-9, abs=1e-12)
        # sieving only moves small regions into their surroundings: the two areas are close
        assert c["area_m2_polygons"] == pytest.approx(c["area_m2_pixels"], rel=0.2, abs=0.01)
    veg = sum(c["area_m2_pixels"] for c in summary["classes"].values() if c["class_id"])
    assert summary["vegetated_area_ha"] == pytest.approx(veg / 10_000)
    if veg:
        weed = summary["classes"]["weed"]["area_m2_pixels"]
        assert summary["weed_share_of_vegetation"] == pytest.approx(weed / veg)
    assert summary["model"]["sha256"] and summary["input"]["name"] == "field_small.tif"
    assert summary["parameters"]["min_area_m2"] == 0.0005
    with rasterio.open(out / "mask.tif") as m, rasterio.open(SAMPLES / "field_small.tif") as s:
        assert m.transform == s.transform and m.crs == s.crs
    assert "mean_conf" in gdf.columns and gdf.mean_conf.between(0, 100).all()


def test_map_human_summary_and_existing_folder(make_checkpoint, tmp_path):
    ckpt = make_checkpoint(patch_px=128)
    out = tmp_path / "f"
    r = run("-q", "map", SAMPLES / "field_small.tif", "-m", ckpt, "-o", out)
    assert r.exit_code == 0, r.output
    assert "mapped in" in r.output
    lines = r.output.splitlines()
    assert any(ln.split()[:3] == ["class", "mask", "area"] and "polygons" in ln
               for ln in lines), r.output
    crop = next(ln.split() for ln in lines if ln.split()[:1] == ["crop"])
    soil = next(ln.split() for ln in lines if ln.split()[:1] == ["soil"])
    assert crop[3].isdigit() and soil[3:] == ["-", "-"], r.output  # soil has no polygons
    before = sorted(p.name for p in out.iterdir())
    r = run("map", SAMPLES / "field_small.tif", "-m", ckpt, "-o", out)
    assert_bad_input(r, "exists", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == before


def test_map_bad_input_leaves_no_folder(make_checkpoint, tmp_path):
    ckpt = make_checkpoint(patch_px=128)
    r = run("map", tmp_path / "missing.tif", "-m", ckpt, "-o", tmp_path / "out")
    assert_bad_input(r, "missing.tif", "not found")
    r = run("map", SAMPLES / "field_rgbn.tif", "-m", ckpt, "-o", tmp_path / "out",
            "--input-range", "model")
    assert_bad_input(r, "uint16")
    assert [p.name for p in tmp_path.iterdir()] == [ckpt.name]


def test_vectorize_cli(tmp_path):
    out = tmp_path / "labels.geojson"
    r = run("-q", "vectorize", SAMPLES / "field_small_labels.tif", "-o", out, "--classes",
            "weed", "--simplify", "0.01", "--crs", "EPSG:4326")
    assert r.exit_code == 0, r.output
    gdf = gpd.read_file(out, engine="pyogrio", layer=0)
    assert len(gdf) > 0 and set(gdf.class_name) == {"weed"} and gdf.crs.to_epsg() == 4326
    with rasterio.open(SAMPLES / "field_small_labels.tif") as ds:
        weed_m2 = (ds.read(1) == 2).sum() * 0.01 * 0.01
    # areas are computed before reprojection, in metres; simplification moves them a little
    assert gdf.area_m2.sum() == pytest.approx(weed_m2, rel=0.05)


@pytest.mark.parametrize("args,words", [
    (["--classes", "wheat"], ["unknown class", "crop"]),
    (["--format", "kml"], ["kml"]),
])
def test_vectorize_bad_options(tmp_path, args, words):
    r = run("vectorize", SAMPLES / "field_small_labels.tif", "-o", tmp_path / "o.gpkg", *args)
    assert r.exit_code == 2
    assert all(w in r.output for w in words)
    assert not (tmp_path / "o.gpkg").exists()


def test_vectorize_float_raster_is_refused(make_raster, tmp_path):
    src = make_raster(dtype="float32", count=1)
    r = run("vectorize", src, "-o", tmp_path / "o.gpkg")
    assert_bad_input(r, "not a class mask", "float32")
    assert not (tmp_path / "o.gpkg").exists()


def test_vectorize_all_nodata_mask_gives_empty_layer(tmp_path):
    from conftest import write_raster

    src = write_raster(tmp_path / "m.tif", np.full((1, 20, 30), 255, np.uint8), nodata=255)
    r = run("-q", "vectorize", src, "-o", tmp_path / "o.fgb")
    assert r.exit_code == 0, r.output
    assert len(gpd.read_file(tmp_path / "o.fgb")) == 0


@pytest.mark.parametrize("bands,nodata", [(("nir",), None), (("red", "nir"), 0),
                                          (("blue", "green", "red", "nir", "swir"), 0)])
def test_map_previews_any_band_count(make_raster, make_checkpoint, tmp_path, bands, nodata):
    data = np.random.default_rng(0).integers(1, 256, (len(bands), 90, 120)).astype(np.uint8)
    data[:, :10, :20] = 0
    src = make_raster(data=data, nodata=nodata, descriptions=bands)
    ckpt = make_checkpoint(bands=bands)
    r = run("-q", "map", src, "-m", ckpt, "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "out" / "preview.png") as png:
        assert png.count == 3 and png.width == 120 and png.height == 90
        rgb = png.read()
    if nodata is not None:  # no-data is never tinted with a class colour
        assert rgb[:, :10, :20].max() == 0
    assert rgb[:, 10:, 20:].mean() > 20  # the image itself is shown


def test_a_failing_preview_never_fails_the_job(make_checkpoint, tmp_path, monkeypatch):
    import agriseg.jobs.fieldmap

    def broken(*args, **kwargs):
        raise RuntimeError("preview renderer exploded")

    monkeypatch.setattr(agriseg.jobs.fieldmap, "render_preview", broken)
    r = run("map", SAMPLES / "field_small.tif", "-m", make_checkpoint(patch_px=128),
            "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "preview" in r.output and "exploded" in r.output  # said as a warning
    out = tmp_path / "out"
    assert (out / "mask.tif").exists() and not (out / "preview.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert "preview" not in summary["outputs"]
    assert any("preview" in w for w in summary["warnings"])


def test_map_summary_low_confidence_share_and_tta(make_checkpoint, make_raster, tmp_path):
    """``low_confidence_share_of_vegetation`` = pixels of a plant class below 60% confidence
    over all plant-class pixels, as read back from the written mask and confidence."""
    ckpt = make_checkpoint(patch_px=64)
    field = make_raster(width=150, height=110, seed=4)
    out = tmp_path / "f"
    r = run("-q", "map", field, "-m", ckpt, "-o", out, "--tta", "flips", "--device", "cpu",
            "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["parameters"]["tta"] == "flips"
    with rasterio.open(out / "mask.tif") as m, rasterio.open(out / "confidence.tif") as c:
        mask, conf = m.read(1), c.read(1)
    veg = (mask != 0) & (mask != 255)
    expected = ((conf < 60) & veg).sum() / veg.sum()
    assert 0 < expected < 1  # a random model on noise: a mix of sure and unsure pixels
    assert summary["low_confidence_share_of_vegetation"] == pytest.approx(expected, abs=1e-12)
