"""Polygon layers carry their QGIS style: layer_styles in a GeoPackage, a .qml beside the rest."""

from __future__ import annotations

import sqlite3
import subprocess
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pyogrio
import pytest
from test_export import CRS, SUFFIX, _frame, _snapshot

from agriseg.constants import DEFAULT_COLORS
from agriseg.errors import ConfigError, OutputError
from agriseg.styles import ClassStyle
from agriseg.vector.export import polygon_sink, write_polygons

SIDECAR_FORMATS = ["shp", "geojson", "fgb", "parquet"]
CLASSES = [ClassStyle(1, "crop", (0, 200, 0)), ClassStyle(2, "mauvaise_herbe_é", (200, 0, 0)),
           ClassStyle(3, "thistle", (200, 0, 200))]


def _categories(qml: str) -> list[tuple[str, str, str]]:
    """(value, label, fill colour) of each category of a categorized polygon style."""
    root = ET.fromstring(qml.split("\n", 1)[1])
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "class_id"
    symbols = {s.get("name"): s for s in renderer.findall("symbols/symbol")}
    out = []
    for cat in renderer.findall("categories/category"):
        props = symbols[cat.get("symbol")].findall("layer/Option/Option")
        color = {o.get("name"): o.get("value") for o in props}["color"]
        out.append((cat.get("value"), cat.get("label"), color))
    return out


def _style_rows(path: Path) -> list[dict]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM layer_styles")]


def test_geopackage_carries_its_layer_default_style(tmp_path):
    path = write_polygons(_frame(), tmp_path / "f.gpkg", layer="weeds", classes=CLASSES)
    [row] = _style_rows(path)
    assert row["f_table_name"] == "weeds" and row["f_geometry_column"] == "geom"
    assert row["useAsDefault"] == 1 and row["f_table_catalog"] == row["f_table_schema"] == ""
    assert row["styleName"] == "agriseg classes" and row["update_time"]
    assert _categories(row["styleQML"]) == [("1", "crop", "0,200,0,255"),
                                            ("2", "mauvaise_herbe_é", "200,0,0,255"),
                                            ("3", "thistle", "200,0,200,255")]
    with sqlite3.connect(path) as db:  # registered, so GDAL reads it as a table, not junk
        assert db.execute("SELECT data_type FROM gpkg_contents WHERE table_name = "
                          "'layer_styles'").fetchone() == ("attributes",)
        columns = [r[1] for r in db.execute("PRAGMA table_info(layer_styles)")]
    assert columns == ["id", "f_table_catalog", "f_table_schema", "f_table_name",
                       "f_geometry_column", "styleName", "styleQML", "styleSLD",
                       "useAsDefault", "description", "owner", "ui", "update_time"]
    assert [list(x) for x in pyogrio.list_layers(path)] == [["weeds", "MultiPolygon"],
                                                            ["layer_styles", None]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no GDAL or pyogrio warning reading either layer
        assert len(pyogrio.read_dataframe(path, layer="weeds")) == 4
        assert len(pyogrio.read_dataframe(path, layer="layer_styles")) == 1


def test_default_style_lists_the_classes_found_in_fixed_colours(tmp_path):
    path = write_polygons(_frame(), tmp_path / "f.gpkg")
    [row] = _style_rows(path)
    assert row["f_table_name"] == "class_polygons"  # the default layer name
    rgba = [",".join(map(str, (*DEFAULT_COLORS[i], 255))) for i in (1, 2)]
    assert _categories(row["styleQML"]) == [("1", "crop", rgba[0]),
                                            ("2", "mauvaise_herbe_é", rgba[1])]


def test_chunked_geopackage_style_lists_the_classes_of_every_chunk(tmp_path):
    with polygon_sink(tmp_path / "c.gpkg", source_crs=CRS, layer="x") as write:
        write(_frame().iloc[:1])  # crop only
        write(_frame().iloc[1:2])  # weed only
    [row] = _style_rows(tmp_path / "c.gpkg")
    assert row["f_table_name"] == "x"
    assert [c[:2] for c in _categories(row["styleQML"])] == [("1", "crop"),
                                                             ("2", "mauvaise_herbe_é")]
    with polygon_sink(tmp_path / "d.gpkg", source_crs=CRS, classes=CLASSES) as write:
        write(_frame().iloc[:0])
    [row] = _style_rows(tmp_path / "d.gpkg")
    assert [c[1] for c in _categories(row["styleQML"])] == ["crop", "mauvaise_herbe_é",
                                                            "thistle"]


@pytest.mark.parametrize("fmt", SIDECAR_FORMATS)
def test_other_formats_get_a_qml_beside_them(tmp_path, fmt):
    path = write_polygons(_frame(), tmp_path / f"f{SUFFIX[fmt]}", classes=CLASSES[:2])
    qml = tmp_path / "f.qml"
    assert _categories(qml.read_text(encoding="utf-8")) == [
        ("1", "crop", "0,200,0,255"), ("2", "mauvaise_herbe_é", "200,0,0,255")]
    assert path.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("fmt", SIDECAR_FORMATS)
def test_qml_is_replaced_with_its_file_and_never_left_from_another_run(tmp_path, fmt,
                                                                      monkeypatch):
    path = tmp_path / f"f{SUFFIX[fmt]}"
    write_polygons(_frame(), path, classes=CLASSES[:1])
    write_polygons(_frame(), path, classes=CLASSES, overwrite=True)
    assert len(_categories((tmp_path / "f.qml").read_text(encoding="utf-8"))) == 3
    before = _snapshot(tmp_path)

    def fail(*args, **kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Path, "write_text", fail)  # dies after the data file is written
    with pytest.raises(RuntimeError, match="disk full"):
        write_polygons(_frame(), path, overwrite=True)
    assert _snapshot(tmp_path) == before


def test_a_users_qml_beside_a_new_output_is_not_overwritten(tmp_path):
    (tmp_path / "f.qml").write_text("my style")
    for suffix in (".fgb", ".shp"):
        with pytest.raises(OutputError, match=r"f\.qml.*--overwrite"):
            write_polygons(_frame(), tmp_path / f"f{suffix}")
    assert _snapshot(tmp_path) == {"f.qml": b"my style"}


def test_layer_styles_is_not_a_layer_name(tmp_path):
    with pytest.raises(ConfigError, match="layer_styles"):
        write_polygons(_frame(), tmp_path / "f.gpkg", layer="layer_styles")
    assert list(tmp_path.iterdir()) == []


def test_styled_geopackage_passes_gdals_validator(tmp_path):
    validator = "osgeo_utils.samples.validate_gpkg"
    python = "/usr/bin/python3"
    if not Path(python).exists() or subprocess.run(
            [python, "-c", f"import {validator}"], capture_output=True).returncode:
        pytest.skip("GDAL's Python utilities are not installed for the system Python")
    write_polygons(_frame(), tmp_path / "a.gpkg")
    with polygon_sink(tmp_path / "b.gpkg", source_crs=CRS) as write:
        write(_frame().iloc[:2])
        write(_frame().iloc[2:])
    for name in ("a.gpkg", "b.gpkg"):
        r = subprocess.run([python, "-m", validator, str(tmp_path / name)],
                           capture_output=True, text=True)
        assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r


def test_a_styled_geopackage_is_read_as_labels_without_asking_which_layer(tmp_path, caplog):
    from agriseg.vector.labels import _open_layer

    path = write_polygons(_frame(), tmp_path / "f.gpkg", layer="corrected")
    with caplog.at_level("WARNING", logger="agriseg"):
        layer, info = _open_layer(path, None)
    assert layer == "corrected" and info["features"] == 4
    assert "layers" not in caplog.text  # layer_styles is no candidate


@pytest.mark.parametrize("fmt", SIDECAR_FORMATS)
def test_chunked_writer_refuses_an_existing_style_before_any_chunk(tmp_path, fmt):
    (tmp_path / "f.qml").write_text("my style")
    with pytest.raises(OutputError, match=r"f\.qml"), \
            polygon_sink(tmp_path / f"f{SUFFIX[fmt]}", source_crs=CRS):
        pytest.fail("the block must not run: its work would be lost")
    assert _snapshot(tmp_path) == {"f.qml": b"my style"}
