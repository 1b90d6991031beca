"""The class mask names its classes for GIS users: colour table, GDAL categories, QGIS style."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import rasterio

from agriseg.errors import OutputError
from agriseg.infer.pipeline import predict_raster

SYSTEM_PYTHON = Path("/usr/bin/python3")
COLORS = [(139, 90, 43), (34, 139, 34), (220, 20, 60)]  # the card's defaults: soil, crop, weed


def _palette(qml: Path) -> list[tuple[str, str, str]]:
    root = ET.fromstring(qml.read_text(encoding="utf-8").split("\n", 1)[1])
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    return [(e.get("value"), e.get("color"), e.get("label"))
            for e in renderer.findall("colorPalette/paletteEntry")]


def _categories(aux_xml: Path) -> list[str]:
    band = ET.parse(aux_xml).getroot().find("PAMRasterBand")
    assert band.get("band") == "1"
    return [c.text or "" for c in band.findall("CategoryNames/Category")]


@pytest.fixture
def predicted(make_raster, make_checkpoint, tmp_path):
    src = make_raster(width=700, height=600)
    out = tmp_path / "out"
    out.mkdir()
    predict_raster(src, out / "mask.tif", model=make_checkpoint(), patch_px=128,
                   confidence=out / "confidence.tif")
    return out


def test_mask_has_class_colours_category_names_and_a_qgis_style(predicted):
    assert sorted(p.name for p in predicted.iterdir()) == [
        "confidence.qml", "confidence.tif", "mask.qml", "mask.tif", "mask.tif.aux.xml"]
    with rasterio.open(predicted / "mask.tif") as ds:
        cmap = ds.colormap(1)
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"  # the sidecar is beside
        assert ds.tags()["CLASS_1"] == "crop"
    assert [cmap[i] for i in range(3)] == [(*c, 255) for c in COLORS]
    assert cmap[255][3] == 0  # no data is transparent
    assert _categories(predicted / "mask.tif.aux.xml") == ["soil", "crop", "weed"]
    assert _palette(predicted / "mask.qml") == [
        ("0", "#8b5a2b", "soil"), ("1", "#228b22", "crop"), ("2", "#dc143c", "weed")]
    conf = ET.fromstring((predicted / "confidence.qml").read_text().split("\n", 1)[1])
    assert conf.find("pipe/rasterrenderer").get("type") == "singlebandpseudocolor"


@pytest.mark.skipif(shutil.which("gdalinfo") is None, reason="GDAL command line tools absent")
def test_gdal_reads_the_class_names_and_the_mask_is_still_a_cog(predicted):
    info = json.loads(subprocess.run(["gdalinfo", "-json", str(predicted / "mask.tif")],
                                     check=True, capture_output=True, text=True).stdout)
    band = info["bands"][0]
    assert band["categories"] == ["soil", "crop", "weed"]
    assert band["colorTable"]["entries"][1] == [34, 139, 34, 255]
    assert band["noDataValue"] == 255
    assert info["metadata"]["IMAGE_STRUCTURE"]["LAYOUT"] == "COG"
    validator = "osgeo_utils.samples.validate_cloud_optimized_geotiff"
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", f"import {validator}"],
                           capture_output=True) if SYSTEM_PYTHON.exists() else None
    if probe is not None and probe.returncode == 0:
        r = subprocess.run([str(SYSTEM_PYTHON), "-m", validator, str(predicted / "mask.tif")],
                           capture_output=True, text=True)
        assert r.returncode == 0 and "is a valid cloud optimized GeoTIFF" in r.stdout, r.stdout


def test_sidecars_are_outputs_replaced_with_the_mask(predicted, make_raster, make_checkpoint):
    src = make_raster("other.tif", width=100, height=80)
    ckpt = make_checkpoint("four.safetensors", classes=("soil", "crop", "weed", "thistle"))
    mask = predicted / "mask.tif"
    (mask.parent / "mask.qml").write_text("my own style")
    mask.unlink()
    (mask.parent / "mask.tif.aux.xml").unlink()
    with pytest.raises(OutputError, match=r"mask\.qml.*--overwrite"):  # before any work
        predict_raster(src, mask, model=ckpt, patch_px=64)
    assert (mask.parent / "mask.qml").read_text() == "my own style" and not mask.exists()
    predict_raster(src, mask, model=ckpt, patch_px=64, overwrite=True)
    assert _categories(mask.parent / "mask.tif.aux.xml") == ["soil", "crop", "weed",
                                                             "thistle"]
    assert [e[2] for e in _palette(mask.parent / "mask.qml")] == ["soil", "crop", "weed",
                                                                  "thistle"]
    assert not [p for p in mask.parent.iterdir() if p.name.startswith(".")]
