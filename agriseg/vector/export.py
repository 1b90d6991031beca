"""Write polygon layers in the formats GIS tools and sprayer terminals read.

One call, :func:`write_polygons`, writes a class-polygon ``GeoDataFrame`` as GeoPackage (the
default), ESRI Shapefile, GeoJSON, FlatGeobuf or GeoParquet. The rules, and why:

* **Outputs appear whole or not at all.** Single-file formats go through
  :func:`agriseg.outputs.atomic_output`. A Shapefile is a set of files, so it is written in a
  temporary folder beside the target; only when the whole set is there is the old set (with
  ``overwrite``) removed and the new files moved in, ``.shp`` last, so a reader never finds a
  ``.shp`` whose ``.dbf`` belongs to another run.
* **Always MultiPolygon.** Every feature is written as a MultiPolygon and every layer is declared
  MultiPolygon, whatever the data holds. The schema then does not depend on whether some field
  happened to contain a split weed patch (or no polygon at all), and GeoPackage/FlatGeobuf
  readers, which insist on one geometry type per layer, always see a polygon layer. Shapefile has
  no single/multi distinction (its layer type is Polygon; readers get a Polygon back for one-part
  features).
* **One Shapefile, not one per class** (:mod:`agriseg.vector.shapefile`): all classes in one
  file set with ``class_id`` and ``class_name`` fields, as sprayer terminals import it.
* **GeoJSON is written in the layer's CRS.** RFC 7946 wants WGS84, but reprojecting silently
  would change the coordinates a user compares against the raster; GDAL writes a ``crs`` member
  for any other CRS. ``crs="EPSG:4326"`` (``--crs EPSG:4326``) gives strict RFC 7946 output: no
  ``crs`` member, exterior rings counter-clockwise and holes clockwise, 7 decimals (about 1 cm),
  or more for masks with pixels finer than 20 cm (``decimals``: rounding to 1 cm would collapse
  one-pixel polygons of a 1 cm mask into lines).
  GeoJSON has no schema of its own: an empty layer reads back with no attribute columns.
* **GeoPackage 1.2.** GDAL writes 1.4 by default, and GDAL 3.6 / QGIS 3.22 (Debian 12) warn on
  every open of a 1.4 file; ``gpkg_version`` chooses another (1.0 to 1.4).
* **FlatGeobuf** gets its spatial index (what makes it worth choosing for web maps), so its
  features come back in the index's (Hilbert) order, not in the order given.
* **GeoParquet** is written by ``GeoDataFrame.to_parquet`` and needs pyarrow.
* **Styled for QGIS.** Each class gets its colour and name (a categorized style on
  ``class_id``): a GeoPackage keeps it as its layer's default style in the ``layer_styles``
  table, as QGIS does; the other formats get a ``<name>.qml`` beside them, which QGIS loads
  with the layer. The ``.qml`` belongs to its data file: it is written, replaced and removed
  with it (part of the Shapefile set; :func:`agriseg.outputs.atomic_file_set` otherwise).
* **Layer names say what the layer holds**: ``class_polygons`` unless told otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely

from agriseg import __version__
from agriseg.errors import ConfigError, VectorError
from agriseg.outputs import atomic_file_set, atomic_output, check_output
from agriseg.styles import CLASS_ATTRIBUTE, ClassStyle, class_styles, polygon_qml, style_path
from agriseg.vector.formats import DEFAULT_FORMAT, FORMATS, FormatSpec  # noqa: F401 - re-exported
from agriseg.vector.shapefile import check_shapefile_free, write_shapefile

log = logging.getLogger("agriseg")


_ALIASES = {"geopackage": "gpkg", "shapefile": "shp", "json": "geojson", "flatgeobuf": "fgb",
            "geoparquet": "parquet"}
# Known columns and the dtype kinds they must have; frames built empty often carry ``object``.
_SCHEMA = {"class_id": ("iu", "int64"), "class_name": ("OUT", "str"), "area_m2": ("f", "float64"),
           "area_ha": ("f", "float64"), "perim_m": ("f", "float64"),
           "mean_conf": ("f", "float64"), "source": ("OUT", "str")}


def format_for(path: str | os.PathLike, fmt: str | None = None) -> str:
    """Return the format key for ``path``: ``fmt`` when given, else guessed from the suffix.

    A given ``fmt`` must agree with the suffix: a GeoPackage named ``.shp`` would be opened
    with the wrong driver by every GIS that guesses from the name.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if fmt is None:
        for key, spec in FORMATS.items():
            if suffix in spec.suffixes:
                return key
        raise ConfigError(f"{path}: cannot tell the vector format from suffix {suffix!r}; "
                          f"use one of {_suffix_list()} or pass --format "
                          f"({', '.join(FORMATS)})")
    key = _ALIASES.get(fmt.lower(), fmt.lower())
    if key not in FORMATS:
        raise ConfigError(f"unknown vector format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    spec = FORMATS[key]
    if suffix not in spec.suffixes:
        raise ConfigError(f"{path}: a {key} output must end in "
                          f"{' or '.join(spec.suffixes)}; rename it to "
                          f"{path.with_suffix(spec.suffix).name}")
    return key


def _suffix_list() -> str:
    return ", ".join(s for spec in FORMATS.values() for s in spec.suffixes)


GPKG_VERSION = "1.2"
_GPKG_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4")
DEFAULT_LAYER = "class_polygons"
STYLES_TABLE = "layer_styles"  # where QGIS looks for a GeoPackage layer's default style
STYLE_NAME = "agriseg classes"


def write_polygons(gdf: gpd.GeoDataFrame, path: str | os.PathLike, *, fmt: str | None = None,
                   layer: str | None = None, crs=None, overwrite: bool = False,
                   gpkg_version: str = GPKG_VERSION,
                   classes: Sequence[ClassStyle] | None = None,
                   decimals: int | None = None) -> Path:
    """Write class polygons to ``path`` atomically; return the path written (the ``.shp``).

    ``crs`` (anything pyproj accepts) reprojects on export; ``layer`` names the layer in
    formats that have layer names (GeoPackage, FlatGeobuf, GeoJSON; default
    ``class_polygons``). An existing output is an :class:`~agriseg.errors.OutputError` unless
    ``overwrite``; a GeoPackage is then replaced whole (other layers in it are not kept).
    ``gpkg_version``: the GeoPackage version written. ``classes``: the classes the QGIS style
    lists (colour and name per ``class_id``); by default those in ``gdf``, coloured by id. A
    frame without ``class_id`` gets no style. ``decimals``: coordinate decimals of strict
    (WGS84) GeoJSON, at least 7 (the default).
    """
    path = Path(path)
    spec = FORMATS[format_for(path, fmt)]
    layer = _check_layer(layer)
    target = _target_crs(gdf.crs, crs)
    _check_gpkg_version(gpkg_version)
    if spec.driver is None:
        _require_pyarrow()
    _check_free(path, spec.name, overwrite)
    out = _prepare(gdf, target)
    if spec.name == "geojson" and out.crs is not None and not out.crs.equals("EPSG:4326"):
        log.info("%s: GeoJSON written in %s, not WGS84 (RFC 7946); pass --crs EPSG:4326 "
                 "for web tools", path, out.crs.to_string())
    qml = _style(out, classes)
    if spec.name == "shp":
        write_shapefile(out, path, overwrite, lambda gdf, dst: _write_ogr(
            gdf, dst, "ESRI Shapefile", None, encoding="UTF-8"),
            sidecars={} if qml is None else {".qml": qml})
    elif spec.name == "gpkg":
        with atomic_output(path, overwrite) as tmp:
            _write_ogr(out, tmp, spec.driver, layer, **_creation_options(
                spec.name, out.crs, gpkg_version))
            if qml is not None:
                write_gpkg_style(tmp, layer, qml)
    else:
        with atomic_file_set(path, [style_path(path)], overwrite) as (tmp, (qml_tmp,)):
            if spec.driver is None:
                out.to_parquet(tmp)
            else:
                _write_ogr(out, tmp, spec.driver, layer, **_creation_options(
                    spec.name, out.crs, gpkg_version, decimals))
            if qml is not None:
                qml_tmp.write_text(qml, encoding="utf-8")
    log.debug("wrote %d polygons to %s (%s)", len(out), path, spec.description)
    return path


@contextlib.contextmanager
def polygon_sink(path: str | os.PathLike, *, source_crs, fmt: str | None = None,
                 layer: str | None = None, crs=None, overwrite: bool = False,
                 gpkg_version: str = GPKG_VERSION, classes: Sequence[ClassStyle] | None = None,
                 decimals: int | None = None
                 ) -> Iterator[Callable[[gpd.GeoDataFrame], None]]:
    """Write a layer chunk by chunk: yields ``write(gdf)``; call it at least once.

    GeoPackage chunks are appended to the (temporary) file as they come, so memory holds one
    chunk, not the whole field. The other formats are collected and written when the block
    ends, because their drivers need the whole layer (FlatGeobuf's spatial index, GeoParquet's
    metadata, the Shapefile set's atomic move). Either way the output appears only when the
    block ends without an error. ``layer``, ``classes``: as for :func:`write_polygons` (by
    default the style lists the classes of every chunk).
    """
    path = Path(path)
    spec = FORMATS[format_for(path, fmt)]
    if spec.name != "gpkg":
        _check_free(path, spec.name, overwrite)  # now, not after the whole field
        frames: list[gpd.GeoDataFrame] = []
        yield frames.append
        if not frames:
            raise RuntimeError("polygon_sink: nothing was written")
        whole = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=frames[0].crs)
        write_polygons(whole, path, fmt=spec.name, layer=layer, crs=crs, overwrite=overwrite,
                       gpkg_version=gpkg_version, classes=classes, decimals=decimals)
        return
    layer = _check_layer(layer)
    target = _target_crs(source_crs, crs)
    _check_gpkg_version(gpkg_version)
    chunks = 0
    seen: dict[int, str] = {}  # the classes written, for the default style
    with atomic_output(path, overwrite) as tmp:
        def write(gdf: gpd.GeoDataFrame) -> None:
            nonlocal chunks
            options = {"append": True} if chunks else _creation_options("gpkg", None,
                                                                        gpkg_version)
            out = _prepare(gdf, target)
            _write_ogr(out, tmp, spec.driver, layer, **options)
            if classes is None:  # else the style is the classes given
                seen.update(_classes_in(out) or {})
            chunks += 1

        yield write
        if not chunks:
            raise RuntimeError("polygon_sink: nothing was written")
        if classes is not None or seen:
            write_gpkg_style(tmp, layer, polygon_qml(classes or class_styles(seen)))


def write_gpkg_style(path: Path, layer: str, qml: str) -> None:
    """Store ``qml`` as ``layer``'s default style in the GeoPackage's ``layer_styles`` table.

    The table is made as QGIS makes it (through OGR, so it is registered in
    ``gpkg_contents`` as an attributes table and GDAL lists it as a layer, as it does for
    GeoPackages styled in QGIS); QGIS applies the row whose ``f_table_name`` and
    ``f_geometry_column`` match the layer and whose ``useAsDefault`` is true.
    """
    geometry_column = pyogrio.read_info(path, layer=layer)["geometry_name"] or "geom"
    row = pd.DataFrame({
        "f_table_catalog": [""], "f_table_schema": [""], "f_table_name": [layer],
        "f_geometry_column": [geometry_column], "styleName": [STYLE_NAME],
        "styleQML": [qml], "styleSLD": [""], "useAsDefault": [True],
        "description": [f"class colours and names (agriseg {__version__})"],
        "owner": [""], "ui": [""],
        "update_time": [pd.Timestamp(dt.datetime.now(dt.timezone.utc))]})
    pyogrio.write_dataframe(row, path, layer=STYLES_TABLE, driver="GPKG", append=True,
                            layer_options={"FID": "id"})


def _style(gdf: gpd.GeoDataFrame, classes: Sequence[ClassStyle] | None) -> str | None:
    """The QML for ``gdf``: ``classes`` when given, else the classes in the frame."""
    if classes is None:
        found = _classes_in(gdf)
        if found is None:
            return None
        classes = class_styles(found)
    return polygon_qml(classes)


def _classes_in(gdf: gpd.GeoDataFrame) -> dict[int, str] | None:
    """Class id -> name of the polygons in ``gdf`` (None: no ``class_id`` column)."""
    if CLASS_ATTRIBUTE not in gdf.columns:
        return None
    if "class_name" not in gdf.columns:
        return {int(i): f"class_{i}" for i in np.unique(gdf[CLASS_ATTRIBUTE].to_numpy())}
    first = gdf[[CLASS_ATTRIBUTE, "class_name"]].drop_duplicates(CLASS_ATTRIBUTE)
    return {int(i): str(n) for i, n in zip(first[CLASS_ATTRIBUTE], first["class_name"],
                                           strict=True)}


def _check_layer(layer: str | None) -> str:
    if layer is None:
        return DEFAULT_LAYER
    if not layer.strip() or layer.lower() == STYLES_TABLE:
        raise ConfigError(f"layer name {layer!r} is not allowed; choose another (default "
                          f"{DEFAULT_LAYER})")
    return layer


def _target_crs(source_crs, crs) -> pyproj.CRS | None:
    """Validate ``crs`` before any work: a typo should not surface after the output is begun."""
    if crs is None:
        return None
    try:
        target = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as e:
        raise ConfigError(f"--crs {crs!r} is not a CRS pyproj understands ({e})") from None
    if source_crs is None:
        raise ConfigError(f"cannot reproject to {crs}: the polygons have no CRS (the source "
                          "raster is not georeferenced); leave out --crs")
    return target


def _check_gpkg_version(version: str) -> None:
    if version not in _GPKG_VERSIONS:
        raise ConfigError(f"GeoPackage version {version!r} is not one of "
                          f"{', '.join(_GPKG_VERSIONS)}")


def _creation_options(fmt: str, crs: pyproj.CRS | None, gpkg_version: str,
                      decimals: int | None = None) -> dict:
    """OGR creation options: the GeoPackage version; strict RFC 7946 for GeoJSON in WGS84."""
    if fmt == "gpkg":
        return {"dataset_options": {"VERSION": gpkg_version}}
    if fmt == "geojson" and crs is not None and crs.equals("EPSG:4326"):
        return {"layer_options": {"RFC7946": "YES",
                                  "COORDINATE_PRECISION": str(max(7, decimals or 7))}}
    return {}


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConfigError("GeoParquet output needs pyarrow; install it "
                          "(pip install pyarrow) or choose another --format") from None


def _prepare(gdf: gpd.GeoDataFrame, target: pyproj.CRS | None) -> gpd.GeoDataFrame:
    """Reproject, give known columns their dtypes and make every geometry a MultiPolygon."""
    out = gdf.copy()
    if target is not None and not out.crs.equals(target):
        out = out.to_crs(target)
    for col, (kinds, dtype) in _SCHEMA.items():
        if col in out.columns and out[col].dtype.kind not in kinds:
            try:
                out[col] = out[col].astype(dtype)
            except (TypeError, ValueError) as e:
                raise VectorError(f"column {col!r} cannot be written as {dtype}: {e}") from None
    out[out.geometry.name] = _as_multipolygons(out.geometry)
    return out


def _as_multipolygons(geoms: gpd.GeoSeries) -> gpd.GeoSeries:
    """Promote Polygons to one-part MultiPolygons; missing geometries stay missing.

    A GeometryCollection (``make_valid`` may keep a collapsed sliver as a line) keeps only its
    polygonal parts: the slivers have no area and no place in a polygon layer.
    """
    arr = np.array(geoms.array, dtype=object)
    types = shapely.get_type_id(arr)
    for i in np.flatnonzero(types == 7):
        arr[i] = _polygonal_parts(arr[i])
    types = shapely.get_type_id(arr)
    bad = ~np.isin(types, (-1, 3, 6))  # missing, Polygon, MultiPolygon
    if bad.any():
        kinds = sorted({g.geom_type for g in arr[bad]})
        raise VectorError(f"only polygons can be exported; found {', '.join(kinds)}")
    single = types == 3
    if single.any():
        arr[single] = shapely.multipolygons(arr[single][:, None])
    return gpd.GeoSeries(arr, index=geoms.index, crs=geoms.crs, name=geoms.name)


def _polygonal_parts(collection: shapely.Geometry) -> shapely.Geometry:
    parts = shapely.get_parts(shapely.get_parts(collection))
    polys = parts[shapely.get_type_id(parts) == 3]
    if len(polys) == 0 and len(parts):
        return collection  # nothing polygonal at all: reported as an error by the caller
    return shapely.multipolygons(polys)


def _write_ogr(gdf: gpd.GeoDataFrame, path: Path, driver: str, layer: str | None,
               **kwargs) -> None:
    """Write with pyogrio, declaring the layer MultiPolygon even when it has no features."""
    with warnings.catch_warnings():  # a raster without CRS was already reported upstream
        warnings.filterwarnings("ignore", "'crs' was not provided", UserWarning)
        pyogrio.write_dataframe(gdf, path, layer=layer, driver=driver,
                                geometry_type="MultiPolygon", promote_to_multi=True, **kwargs)


def _check_free(path: Path, fmt: str, overwrite: bool) -> None:
    """Check the output and the files that go with it (Shapefile parts, the ``.qml``)."""
    if fmt == "shp":
        check_shapefile_free(path, overwrite)
        return
    check_output(path, overwrite)
    if fmt != "gpkg":
        check_output(style_path(path), overwrite)
