"""Vectorized masks open styled: class colours and names from the mask, a layer name that says
what it holds."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pyogrio
import pytest
import rasterio
from cli_helpers import run
from rasterio.transform import from_origin
from test_export_styles import _categories

from agriseg.constants import DEFAULT_COLORS
from agriseg.vector.vectorize import default_layer, vectorize_mask


def _mask(path, tags: dict | None = None, colormap: dict | None = None):
    data = np.zeros((30, 40), np.uint8)
    data[2:8, 2:8] = 1
    data[12:20, 12:20] = 2
    data[25:28, 30:35] = 4
    with rasterio.open(path, "w", driver="GTiff", width=40, height=30, count=1, dtype="uint8",
                       nodata=255, crs="EPSG:32634",
                       transform=from_origin(500000.0, 4650000.0, 0.1, 0.1)) as dst:
        dst.write(data, 1)
        if tags:
            dst.update_tags(**tags)
        if colormap:
            dst.write_colormap(1, colormap)
    return path


def _gpkg_style(path) -> tuple[str, list]:
    with sqlite3.connect(path) as db:
        table, qml = db.execute("SELECT f_table_name, styleQML FROM layer_styles "
                                "WHERE useAsDefault").fetchone()
    return table, _categories(qml)


def test_style_takes_names_and_colours_from_the_mask_tags(tmp_path):
    tags = {"classes": json.dumps(["soil", "crop", "weed", "stone", "thistle"]),
            "class_colors": json.dumps([[1, 1, 1], [0, 250, 0], [250, 0, 0], [5, 5, 5],
                                        [9, 0, 9]])}
    mask = _mask(tmp_path / "IMG 0042.tif", tags)
    out = vectorize_mask(mask, tmp_path / "p.gpkg").path
    layer, cats = _gpkg_style(out)
    assert layer == "IMG_0042_class_polygons"
    assert [name for name, _ in pyogrio.list_layers(out)] == [layer, "layer_styles"]
    # every exported class, found or not (stone has no polygon here), never the background
    assert cats == [("1", "crop", "0,250,0,255"), ("2", "weed", "250,0,0,255"),
                    ("3", "stone", "5,5,5,255"), ("4", "thistle", "9,0,9,255")]
    vectorize_mask(mask, tmp_path / "w.gpkg", classes=["weed"], layer="weeds")
    assert _gpkg_style(tmp_path / "w.gpkg") == ("weeds", [("2", "weed", "250,0,0,255")])


def test_colours_from_the_colour_table_when_tags_have_none(tmp_path):
    mask = _mask(tmp_path / "m.tif", {"classes": "0=soil,1=crop,2=weed"},
                 colormap={1: (10, 20, 30, 255), 2: (40, 50, 60, 255)})
    vectorize_mask(mask, tmp_path / "p.fgb")
    assert _categories((tmp_path / "p.qml").read_text(encoding="utf-8")) == [
        ("1", "crop", "10,20,30,255"), ("2", "weed", "40,50,60,255")]


def test_unnamed_mask_style_lists_the_classes_found_in_fixed_colours(tmp_path):
    vectorize_mask(_mask(tmp_path / "m.tif"), tmp_path / "p.shp")
    rgba = [",".join(map(str, (*DEFAULT_COLORS[i % len(DEFAULT_COLORS)], 255)))
            for i in (1, 2, 4)]
    assert _categories((tmp_path / "p.qml").read_text(encoding="utf-8")) == [
        ("1", "class_1", rgba[0]), ("2", "class_2", rgba[1]), ("4", "class_4", rgba[2])]


@pytest.mark.parametrize(("source", "layer"), [
    ("field.tif", "field_class_polygons"),
    ("/data/IMG-0001.JPG.tif", "IMG_0001_JPG_class_polygons"),
    ("champ é 2.tif", "champ_é_2_class_polygons"), ("...tif", "class_polygons")])
def test_default_layer_names(source, layer):
    assert default_layer(source) == layer


def test_cli_layer_name_default_and_override(tmp_path):
    mask = _mask(tmp_path / "north.tif", {"classes": json.dumps(["soil", "crop", "weed"])})
    r = run("-q", "vectorize", mask, "-o", tmp_path / "a.gpkg")
    assert r.exit_code == 0, r.output
    assert pyogrio.list_layers(tmp_path / "a.gpkg")[0][0] == "north_class_polygons"
    r = run("-q", "vectorize", mask, "-o", tmp_path / "b.gpkg", "--layer", "weeds_2024")
    assert r.exit_code == 0, r.output
    assert _gpkg_style(tmp_path / "b.gpkg")[0] == "weeds_2024"
