"""Polygon export: every format round-trips values, geometry and CRS, atomically."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pyproj
import pytest
import shapely
from conftest import STRICT_GEOJSON_TYPES, geojson_polygons
from shapely.geometry import LineString, MultiPolygon, Polygon, box

from agriseg.errors import ConfigError, OutputError, VectorError
from agriseg.vector import export, shapefile
from agriseg.vector.export import FORMATS, format_for, write_polygons

CRS = "EPSG:32634"
X0, Y0 = 500000.0, 4650000.0
SUFFIX = {"gpkg": ".gpkg", "shp": ".shp", "geojson": ".geojson", "fgb": ".fgb",
          "parquet": ".parquet"}
ALL = list(SUFFIX)
ATTRS = ["class_id", "class_name", "area_m2", "area_ha", "perim_m", "mean_conf", "source"]


def _frame(crs: str | None = CRS) -> gpd.GeoDataFrame:
    """Squares, a polygon with a hole and a two-part weed patch, one without confidence."""
    holed = Polygon(box(X0 + 20, Y0, X0 + 30, Y0 + 10).exterior.coords,
                    [box(X0 + 23, Y0 + 3, X0 + 26, Y0 + 6).exterior.coords[::-1]])
    geoms = [box(X0, Y0, X0 + 10, Y0 + 10), box(X0 + 12.5, Y0 + 0.25, X0 + 14.75, Y0 + 2.5),
             holed, MultiPolygon([box(X0 + 40, Y0, X0 + 41, Y0 + 1),
                                  box(X0 + 45, Y0 + 5, X0 + 47, Y0 + 7)])]
    area = shapely.area(np.array(geoms))
    return gpd.GeoDataFrame({
        "class_id": np.array([1, 2, 1, 2], dtype=np.int32),
        "class_name": ["crop", "mauvaise_herbe_é", "crop", "mauvaise_herbe_é"],
        "area_m2": area, "area_ha": area / 1e4, "perim_m": shapely.length(np.array(geoms)),
        "mean_conf": [0.91, np.nan, 0.5, 0.125],
        "source": ["field.tif"] * 4,
    }, geometry=geoms, crs=crs)


def _read(path: Path) -> gpd.GeoDataFrame:
    if path.suffix in (".parquet", ".geoparquet"):
        return gpd.read_parquet(path)
    return gpd.read_file(path, engine="pyogrio", layer=_first_layer(path))


def _info(path: Path) -> dict:
    return pyogrio.read_info(path, layer=_first_layer(path))


def _first_layer(path: Path) -> str:
    """The polygon layer: a GeoPackage also lists its ``layer_styles`` table."""
    return str(pyogrio.list_layers(path)[0][0])


def _multi(g):
    return g if g.geom_type == "MultiPolygon" else MultiPolygon([g])


def _by_position(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Rows sorted west to east: FlatGeobuf stores features in its spatial index's order."""
    order = np.argsort(shapely.bounds(gdf.geometry.to_numpy())[:, 0], kind="stable")
    return gdf.iloc[order].reset_index(drop=True)


def _assert_same(back: gpd.GeoDataFrame, expected: gpd.GeoDataFrame) -> None:
    assert len(back) == len(expected)
    back, expected = _by_position(back), _by_position(expected)
    for col in expected.columns.drop("geometry"):
        got, want = back[col].to_numpy(), expected[col].to_numpy()
        if want.dtype.kind in "iuf":
            np.testing.assert_allclose(got.astype(float), want.astype(float), rtol=1e-12,
                                       equal_nan=True, err_msg=col)
        else:
            assert list(got) == list(want), col
    got, want = back.geometry.to_numpy(), expected.geometry.to_numpy()
    assert shapely.equals(got, want).all()
    got = shapely.normalize(np.array([_multi(g) for g in got]))
    want = shapely.normalize(np.array([_multi(g) for g in want]))
    assert shapely.equals_exact(got, want, tolerance=1e-6).all()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("fmt", ALL)
def test_round_trip_keeps_values_geometry_and_crs(tmp_path, fmt):
    gdf = _frame()
    path = write_polygons(gdf, tmp_path / f"fields{SUFFIX[fmt]}")
    assert path == tmp_path / f"fields{SUFFIX[fmt]}"
    back = _read(path)
    _assert_same(back, gdf)
    assert back.crs == pyproj.CRS(CRS)
    if fmt != "shp":  # Shapefile has no single/multi distinction
        assert set(back.geom_type) == {"MultiPolygon"}
    weed = _by_position(back).iloc[1]
    assert weed["class_name"] == "mauvaise_herbe_é" and np.isnan(weed["mean_conf"])


@pytest.mark.parametrize(("fmt", "layer_type"), [("gpkg", "MultiPolygon"),
                                                  ("fgb", "MultiPolygon"),
                                                  ("geojson", "MultiPolygon"),
                                                  ("shp", "Polygon")])
def test_layer_is_declared_polygonal(tmp_path, fmt, layer_type):
    path = write_polygons(_frame(), tmp_path / f"fields{SUFFIX[fmt]}", layer="weeds")
    info = _info(path)
    assert info["geometry_type"] == layer_type
    if fmt in ("gpkg", "fgb"):
        assert pyogrio.list_layers(path)[0][0] == "weeds"


def test_shapefile_has_prj_cpg_and_one_file_set(tmp_path):
    path = write_polygons(_frame(), tmp_path / "fields.shp")
    assert pyproj.CRS(path.with_suffix(".prj").read_text()) == pyproj.CRS(CRS)
    assert path.with_suffix(".cpg").read_text().strip().upper() in ("UTF-8", "UTF8")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fields.cpg", "fields.dbf", "fields.prj", "fields.qml", "fields.shp", "fields.shx"]
    fields = _info(path)["fields"]
    assert list(fields) == ATTRS
    assert all(len(f.encode()) <= 10 for f in fields)
    assert sorted(set(_read(path)["class_name"])) == ["crop", "mauvaise_herbe_é"]


def test_shapefile_truncates_and_deduplicates_long_names(tmp_path, caplog):
    gdf = _frame()
    gdf["confidence_mean"] = [1.0, 2.0, 3.0, 4.0]
    gdf["confidence_max"] = [5.0, 6.0, 7.0, 8.0]
    gdf["class_name_fr"] = ["culture", "adventice", "culture", "adventice"]
    with caplog.at_level(logging.WARNING, logger="agriseg"):
        path = write_polygons(gdf, tmp_path / "fields.shp")
    fields = list(_info(path)["fields"])
    assert fields == [*ATTRS, "confidence", "confiden_1", "class_na_1"]
    assert "'confidence_max' -> 'confiden_1'" in caplog.text
    back = _read(path)
    assert back["confiden_1"].tolist() == [5.0, 6.0, 7.0, 8.0]
    assert back["class_na_1"].tolist() == ["culture", "adventice", "culture", "adventice"]
    # the same long names are kept whole where the format allows them
    gpkg = write_polygons(gdf, tmp_path / "fields.gpkg")
    assert "confidence_mean" in _info(gpkg)["fields"]


def test_dbf_names_count_bytes_and_ignore_case():
    names = shapefile.dbf_names(["Confidence", "confidence_x", "préparation_sol", "a" * 11])
    assert names == {"confidence_x": "confiden_1", "préparation_sol": "préparati",
                     "a" * 11: "a" * 10}
    assert all(len(n.encode()) <= 10 for n in names.values())


@pytest.mark.parametrize("fmt", ALL)
def test_crs_option_reprojects(tmp_path, fmt):
    path = write_polygons(_frame(), tmp_path / f"fields{SUFFIX[fmt]}", crs="EPSG:4326")
    back = _read(path)
    assert back.crs == pyproj.CRS("EPSG:4326")
    xmin, ymin, xmax, ymax = back.total_bounds
    assert 20.9 < xmin < xmax < 21.1 and 41.9 < ymin < ymax < 42.1  # UTM 34N origin: 21°E
    got = _by_position(back).geometry.to_numpy()
    want = _by_position(_frame().to_crs("EPSG:4326")).geometry.to_numpy()
    assert shapely.equals_exact(shapely.normalize(np.array([_multi(g) for g in got])),
                                shapely.normalize(np.array([_multi(g) for g in want])),
                                tolerance=1e-7 if fmt == "geojson" else 1e-9).all()  # RFC 7946


def test_crs_option_needs_a_source_crs(tmp_path):
    with pytest.raises(ConfigError, match="no CRS"):
        write_polygons(_frame(crs=None), tmp_path / "fields.gpkg", crs="EPSG:4326")
    with pytest.raises(ConfigError, match="not a CRS"):
        write_polygons(_frame(), tmp_path / "fields.gpkg", crs="EPSG:nope")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["gpkg", "shp"])
def test_layer_without_crs_is_written_without_crs(tmp_path, fmt):
    path = write_polygons(_frame(crs=None), tmp_path / f"fields{SUFFIX[fmt]}")
    back = _read(path)
    assert back.crs is None
    _assert_same(back, _frame(crs=None))
    assert not path.with_suffix(".prj").exists()


@pytest.mark.parametrize("fmt", ALL)
def test_existing_output_is_kept_without_overwrite(tmp_path, fmt):
    path = write_polygons(_frame(), tmp_path / f"fields{SUFFIX[fmt]}")
    before = _snapshot(tmp_path)
    with pytest.raises(OutputError, match="exists"):
        write_polygons(_frame().iloc[:1], path)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("fmt", ALL)
def test_overwrite_replaces(tmp_path, fmt):
    path = write_polygons(_frame(), tmp_path / f"fields{SUFFIX[fmt]}")
    write_polygons(_frame().iloc[2:], path, overwrite=True)
    _assert_same(_read(path), _frame().iloc[2:])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_overwrite_replaces_the_whole_shapefile_set(tmp_path):
    path = write_polygons(_frame(), tmp_path / "fields.shp")
    path.with_suffix(".qix").write_bytes(b"old spatial index")
    assert path.with_suffix(".qml").is_file()
    unstyled = _frame(crs=None).iloc[:1].drop(columns="class_id")  # nothing to style by
    write_polygons(unstyled, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fields.cpg", "fields.dbf", "fields.shp", "fields.shx"]  # old .prj, .qix, .qml gone
    assert len(_read(path)) == 1


def test_stray_shapefile_part_is_not_overwritten(tmp_path):
    (tmp_path / "fields.dbf").write_bytes(b"someone else's table")
    with pytest.raises(OutputError, match="fields.dbf"):
        write_polygons(_frame(), tmp_path / "fields.shp")
    assert _snapshot(tmp_path) == {"fields.dbf": b"someone else's table"}


def _failing_ogr_writer(monkeypatch):
    real = pyogrio.write_dataframe

    def write_then_fail(df, path, **kw):
        real(df, path, **kw)  # a complete-looking file (or file set) now exists
        raise RuntimeError("disk full")

    monkeypatch.setattr(export.pyogrio, "write_dataframe", write_then_fail)


def _failing_parquet_writer(monkeypatch):
    def write_then_fail(self, path, *args, **kw):
        Path(path).write_bytes(b"PAR1 partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(gpd.GeoDataFrame, "to_parquet", write_then_fail)


@pytest.mark.parametrize("fmt", ALL)
@pytest.mark.parametrize("existing", [False, True])
def test_failed_write_leaves_no_output_and_no_temporary_files(tmp_path, monkeypatch, fmt,
                                                              existing):
    path = tmp_path / f"fields{SUFFIX[fmt]}"
    if existing:
        write_polygons(_frame().iloc[:1], path)
    before = _snapshot(tmp_path)
    if fmt == "parquet":
        _failing_parquet_writer(monkeypatch)
    else:
        _failing_ogr_writer(monkeypatch)
    with pytest.raises(RuntimeError, match="disk full"):
        write_polygons(_frame(), path, overwrite=True)
    assert _snapshot(tmp_path) == before  # nothing new, nothing half-replaced


@pytest.mark.parametrize("fmt", ALL)
def test_empty_layer_keeps_schema(tmp_path, fmt):
    empty = _frame().iloc[:0]
    path = write_polygons(empty, tmp_path / f"fields{SUFFIX[fmt]}")
    back = _read(path)
    assert len(back) == 0
    assert back.crs == pyproj.CRS(CRS)
    if fmt == "geojson":  # an empty FeatureCollection has no schema to read back
        return
    assert list(back.columns) == [*ATTRS, "geometry"]
    if fmt != "parquet":
        info = _info(path)
        assert info["geometry_type"] == ("Polygon" if fmt == "shp" else "MultiPolygon")
        types = dict(zip(info["fields"], info["dtypes"], strict=True))
        assert types["class_id"].startswith("int") and types["area_m2"] == "float64"


def test_empty_frame_with_untyped_columns_gets_the_schema(tmp_path):
    empty = gpd.GeoDataFrame(columns=ATTRS, geometry=[], crs=CRS)
    assert empty["class_id"].dtype == object
    path = write_polygons(empty, tmp_path / "fields.gpkg")
    info = _info(path)
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert types == {"class_id": "int64", "class_name": "object", "area_m2": "float64",
                     "area_ha": "float64", "perim_m": "float64", "mean_conf": "float64",
                     "source": "object"}


def test_collections_keep_polygonal_parts_and_lines_are_refused(tmp_path):
    gdf = _frame().iloc[:1]
    square, line = gdf.geometry.iloc[0], LineString([(X0, Y0), (X0 + 5, Y0)])
    mixed = gdf.set_geometry([shapely.GeometryCollection([square, line])], crs=CRS)
    back = _read(write_polygons(mixed, tmp_path / "fields.gpkg"))
    assert back.geometry.iloc[0].equals(square)
    with pytest.raises(VectorError, match="LineString"):
        write_polygons(gdf.set_geometry([line], crs=CRS), tmp_path / "lines.gpkg")
    assert not (tmp_path / "lines.gpkg").exists()


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    with pytest.raises(ConfigError, match="install pyarrow|pip install pyarrow"):
        write_polygons(_frame(), tmp_path / "fields.parquet")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "fmt"), [
    ("a.gpkg", "gpkg"), ("a.SHP", "shp"), ("a.geojson", "geojson"), ("a.json", "geojson"),
    ("a.fgb", "fgb"), ("a.parquet", "parquet"), ("a.geoparquet", "parquet")])
def test_format_from_suffix(name, fmt):
    assert format_for(Path("out") / name) == fmt
    assert format_for(name, fmt) == fmt


def test_format_errors_name_the_valid_choices():
    with pytest.raises(ConfigError, match="gpkg, shp, geojson, fgb, parquet"):
        format_for("out.kml")
    with pytest.raises(ConfigError, match="gpkg, shp, geojson, fgb, parquet"):
        format_for("out.gpkg", "kml")
    with pytest.raises(ConfigError, match=r"\.shp"):
        format_for("out.gpkg", "shp")
    assert format_for("out.geojson", "GeoJSON") == "geojson"
    assert format_for("out.fgb", "flatgeobuf") == "fgb"


def test_format_table_is_complete():
    assert list(FORMATS) == ["gpkg", "shp", "geojson", "fgb", "parquet"]
    for key, spec in FORMATS.items():
        assert spec.name == key and spec.suffix.startswith(".") and spec.description
    assert {s.driver for s in FORMATS.values()} >= {"GPKG", "ESRI Shapefile", "FlatGeobuf"}
    assert os.sep not in "".join(s for spec in FORMATS.values() for s in spec.suffixes)


def _gpkg_version(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as db:
        app = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
    assert app == 0x47504B47  # 'GPKG'
    return version


def test_geopackage_is_version_1_2_unless_told(tmp_path):
    from agriseg.vector.export import polygon_sink

    assert _gpkg_version(write_polygons(_frame(), tmp_path / "a.gpkg")) == 10200
    assert _gpkg_version(write_polygons(_frame(), tmp_path / "b.gpkg",
                                        gpkg_version="1.4")) == 10400
    with polygon_sink(tmp_path / "c.gpkg", source_crs=CRS) as write:  # chunk by chunk
        write(_frame().iloc[:2])
        write(_frame().iloc[2:])
    assert _gpkg_version(tmp_path / "c.gpkg") == 10200 and len(_read(tmp_path / "c.gpkg")) == 4
    with pytest.raises(ConfigError, match="GeoPackage version '2.0'"):
        write_polygons(_frame(), tmp_path / "d.gpkg", gpkg_version="2.0")
    assert not (tmp_path / "d.gpkg").exists()


def test_geojson_in_wgs84_is_strict_rfc7946(tmp_path):
    import json
    import re

    gdf = _frame()
    clockwise = Polygon(box(X0 + 60, Y0, X0 + 70, Y0 + 10).exterior.coords[::-1])
    assert not clockwise.exterior.is_ccw
    gdf.loc[0, "geometry"] = clockwise  # a clockwise exterior must come out counter-clockwise
    path = write_polygons(gdf, tmp_path / "f.geojson", crs="EPSG:4326")
    text = path.read_text()
    doc = json.loads(text)
    assert "crs" not in doc
    decimals = [len(d) for d in re.findall(r"-?\d+\.(\d+)", json.dumps(
        [f["geometry"] for f in doc["features"]]))]
    assert max(decimals) <= 7
    for feature in doc["features"]:
        assert feature["geometry"]["type"] in STRICT_GEOJSON_TYPES
        for polygon in geojson_polygons(feature["geometry"]):
            exterior, *holes = (shapely.LinearRing(r) for r in polygon)
            assert exterior.is_ccw and not any(h.is_ccw for h in holes)
    back = _read(path)
    expected = gdf.to_crs("EPSG:4326")
    assert back.crs == pyproj.CRS("EPSG:4326")
    lon, lat = shapely.get_coordinates(back.geometry.to_numpy()).T
    assert 20 < lon.min() < lon.max() < 22 and 41 < lat.min() < lat.max() < 43  # lon, lat order
    got = shapely.normalize(np.array([_multi(g) for g in _by_position(back).geometry]))
    want = shapely.normalize(np.array([_multi(g) for g in _by_position(expected).geometry]))
    assert shapely.equals_exact(got, want, tolerance=1e-7).all()  # 7 decimals: ~1 cm


def test_geojson_in_another_crs_keeps_its_crs_member(tmp_path):
    import json

    doc = json.loads(write_polygons(_frame(), tmp_path / "f.geojson").read_text())
    assert "32634" in json.dumps(doc["crs"])
