"""Prescription cells as polygon layers: a zipped Shapefile for terminals, a GeoPackage for GIS.

Both hold one feature per field cell (zero-rate cells included: terminals treat a missing
polygon as "no instruction", not as "do not spray"), with ASCII field names of at most 10
characters so the DBF needs no renaming: ``RATE`` (the rate, float), ``WEED_PCT`` (weed cover
in percent), ``AREA_M2`` (the cell's field area), ``HEADLAND`` (1 in the headland strip),
``COL``/``ROW`` (the cell's grid position).

The Shapefile is 2D, in EPSG:4326 (what terminals expect), with ``.prj`` and ``.cpg``, zipped
flat (no folders inside), because terminals import one zip per prescription. The GeoPackage
keeps the grid's own CRS (the mask's, or the UTM zone of a geographic mask).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np

from agriseg.spray.rates import CellPlan
from agriseg.vector.export import write_polygons

LAYER = "prescription"


def cells_frame(plan: CellPlan) -> gpd.GeoDataFrame:
    """The field cells of ``plan`` as a GeoDataFrame in the grid's CRS, flat order."""
    idx = np.flatnonzero(plan.field)
    rows, cols = np.divmod(idx, plan.grid.n_cols)
    return gpd.GeoDataFrame({
        "RATE": plan.rate[idx].astype(float),
        "WEED_PCT": np.round(plan.weed_share[idx] * 100.0, 4),
        "AREA_M2": np.round(plan.area_m2[idx], 4),
        "HEADLAND": plan.headland[idx].astype(np.int32),
        "COL": cols.astype(np.int32), "ROW": rows.astype(np.int32),
    }, geometry=plan.cells[idx], crs=plan.grid.crs)


def write_shapefile_zip(plan: CellPlan, folder: Path, name: str = LAYER) -> Path:
    """Write ``folder/<name>.zip`` holding ``<name>.shp/.shx/.dbf/.prj/.cpg`` in EPSG:4326."""
    work = folder / f".{name}-shp"
    work.mkdir()
    try:
        write_polygons(cells_frame(plan), work / f"{name}.shp", crs="EPSG:4326")
        target = folder / f"{name}.zip"
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(work.iterdir()):
                zf.write(part, arcname=part.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def write_geopackage(plan: CellPlan, folder: Path, name: str = LAYER) -> Path:
    """Write ``folder/<name>.gpkg`` (layer ``prescription``) in the grid's CRS."""
    return write_polygons(cells_frame(plan), folder / f"{name}.gpkg", layer=LAYER)
