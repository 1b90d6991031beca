"""The polygon formats agriseg writes: names, OGR drivers and suffixes.

Kept apart from :mod:`agriseg.vector.export` (which imports geopandas) so the command line can
list the formats without loading the vector stack: ``agriseg predict`` never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FormatSpec:
    """A vector output format: its OGR driver (None when not written by OGR) and file suffixes."""

    name: str
    driver: str | None
    suffixes: tuple[str, ...]
    description: str

    @property
    def suffix(self) -> str:
        """The preferred suffix, used in messages."""
        return self.suffixes[0]


FORMATS: dict[str, FormatSpec] = {
    "gpkg": FormatSpec("gpkg", "GPKG", (".gpkg",), "GeoPackage (default; one file, any GIS)"),
    "shp": FormatSpec("shp", "ESRI Shapefile", (".shp",),
                      "ESRI Shapefile (.shp .shx .dbf .prj .cpg; sprayer terminals)"),
    "geojson": FormatSpec("geojson", "GeoJSON", (".geojson", ".json"),
                          "GeoJSON in the layer's CRS (use --crs EPSG:4326 for RFC 7946)"),
    "fgb": FormatSpec("fgb", "FlatGeobuf", (".fgb",), "FlatGeobuf (streamable, web maps)"),
    "parquet": FormatSpec("parquet", None, (".parquet", ".geoparquet"),
                          "GeoParquet (needs pyarrow)"),
}
DEFAULT_FORMAT = "gpkg"
