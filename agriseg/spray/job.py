"""``prescribe``: a weed map in, a spot-spray prescription folder out.

The folder holds the formats asked for (``prescription.zip`` Shapefile, ``TASKDATA/`` ISO-XML,
``prescription.gpkg``) and ``prescription.json``: areas, product, savings against broadcast and
cell counts per grid, with the parameters and the input's identity. It appears whole or not at
all (:func:`agriseg.outputs.atomic_dir`); every bad input is found before it is begun.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer

from agriseg import __version__
from agriseg.errors import ConfigError, OutputError
from agriseg.hashing import file_sha256
from agriseg.outputs import atomic_dir
from agriseg.spray import rates
from agriseg.spray.cover import mask_counts, polygon_weed_area, to_crs
from agriseg.spray.grid import CellGrid, field_grid, lonlat_grid, metric_crs
from agriseg.spray.isoxml import ddi_for, rate_value, write_taskdata
from agriseg.spray.source import WeedMap, open_weed_map, read_boundary
from agriseg.spray.writers import write_geopackage, write_shapefile_zip

FORMATS = ("shp", "isoxml", "gpkg")
REPORT_NAME = "prescription.json"
OUTPUT_NAMES = {"shp": "prescription.zip", "isoxml": "TASKDATA/TASKDATA.XML",
                "gpkg": "prescription.gpkg"}
WGS84 = CRS.from_epsg(4326)


@dataclass
class PrescriptionResult:
    """What :func:`prescribe` wrote: the folder, the report (as in ``prescription.json``) and
    the cell plans per grid (``"field"``: the metric grid; ``"isoxml"``: the lon/lat grid)."""

    out_dir: Path
    report: dict[str, Any]
    plans: dict[str, rates.CellPlan]


def prescribe(map: str | os.PathLike, out_dir: str | os.PathLike, *,
              boundary: str | os.PathLike | None = None, cell_width_m: float = 1.0,
              cell_length_m: float = 1.0, heading_deg: float = 0.0, threshold: float = 0.01,
              buffer_m: float = 0.5, rate: float = 150.0, units: str = "l/ha",
              headland_m: float = 0.0, formats: Sequence[str] = ("shp",),
              weed_class: str | Sequence[str] | None = None,
              overwrite: bool = False) -> PrescriptionResult:
    """Turn a weed map into a spot-spray prescription folder.

    Parameters
    ----------
    map
        Class mask GeoTIFF, ``agriseg map`` output folder, or class polygon file.
    out_dir
        Folder to create; it appears only when everything in it is written.
    boundary
        Field boundary polygons in the map's CRS; default: the map's valid data.
    cell_width_m, cell_length_m, heading_deg
        Cell size across travel (the spray section width) and along it, in metres; direction
        of travel in degrees clockwise from north (Shapefile/GeoPackage grid only).
    threshold, buffer_m, rate, units, headland_m
        Weed share (0-1) that triggers a cell; distance (m) around triggered cells also
        sprayed; the rate and its units (l/ha or kg/ha); headland strip width (m) sprayed at
        the rate everywhere.
    formats
        Any of ``shp``, ``isoxml``, ``gpkg``.
    weed_class
        Weed class name(s) or id(s); default: every class whose name contains "weed".
    overwrite
        Replace an existing folder.

    Returns
    -------
    PrescriptionResult
        The folder, the report written to ``prescription.json`` and the per-grid cell plans.

    Raises
    ------
    AgrisegError
        A missing or unusable map or boundary, no weed class, a boundary in another CRS or
        off the map, a bad option, or an existing folder without ``overwrite``.
    """
    t0 = time.perf_counter()
    formats = _check_options(locals())
    weed_map = open_weed_map(map, weed_class)
    field = read_boundary(boundary, weed_map.crs, weed_map.footprint) if boundary else None
    if Path(out_dir).exists() and not overwrite:  # fail before the work, not after it
        raise OutputError(f"{out_dir}: output folder exists; pass --overwrite to replace it")
    grids = _build_grids(weed_map, field, formats, cell_width_m, cell_length_m, heading_deg)
    plans = _plan_grids(weed_map, field, grids, threshold=threshold, buffer_m=buffer_m,
                        rate=rate, headland_m=headland_m)
    params = {"boundary": str(boundary) if boundary else None, "cell_width_m": cell_width_m,
              "cell_length_m": cell_length_m, "heading_deg": heading_deg,
              "threshold": threshold, "buffer_m": buffer_m, "rate": rate, "units": units,
              "headland_m": headland_m, "formats": list(formats)}
    with atomic_dir(out_dir, overwrite) as tmp:
        if "shp" in formats:
            write_shapefile_zip(plans["field"], tmp)
        if "gpkg" in formats:
            write_geopackage(plans["field"], tmp)
        if "isoxml" in formats:
            write_taskdata(plans["isoxml"], tmp, rate=rate, units=units)
        report = build_report(weed_map, params, plans, time.perf_counter() - t0)
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return PrescriptionResult(Path(out_dir), report, plans)


def _check_options(opts: dict[str, Any]) -> tuple[str, ...]:
    for name in ("cell_width_m", "cell_length_m", "rate"):
        if not opts[name] > 0:
            raise ConfigError(f"{name} {opts[name]} must be above 0")
    for name in ("buffer_m", "headland_m"):
        if not opts[name] >= 0:
            raise ConfigError(f"{name} {opts[name]} must be 0 or more")
    if not 0 <= opts["threshold"] <= 1:
        raise ConfigError(f"threshold {opts['threshold']} must be a share from 0 to 1 "
                          f"(0.01 = 1%)")
    rate_value(opts["rate"], opts["units"])  # units known, value fits the DDI's int32
    formats = tuple(dict.fromkeys(f.lower() for f in opts["formats"]))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"prescription format {(bad or [''])[0]!r} is not one of "
                          f"{', '.join(FORMATS)}")
    return formats


def _build_grids(weed_map: WeedMap, field: shapely.Geometry | None, formats: tuple[str, ...],
                 width_m: float, length_m: float, heading_deg: float) -> dict[str, CellGrid]:
    """The metric field grid (shp, gpkg) and the lon/lat grid (isoxml), over the field."""
    outline = field if field is not None else weed_map.footprint
    segment = max(np.ptp(np.reshape(outline.bounds, (2, 2)), axis=0)) / 100
    lonlat = to_crs(outline, _tr(weed_map.crs, WGS84), segment) \
        if not weed_map.crs.equals(WGS84) else outline
    grids = {}
    if {"shp", "gpkg"} & set(formats):
        centre = lonlat.centroid
        crs = metric_crs(weed_map.crs, (centre.x, centre.y))
        local = outline if crs.equals(weed_map.crs) else \
            to_crs(outline, _tr(weed_map.crs, crs), segment)
        grids["field"] = field_grid(crs, shapely.get_coordinates(local), width_m, length_m,
                                    heading_deg)
    if "isoxml" in formats:
        grids["isoxml"] = lonlat_grid(shapely.get_coordinates(lonlat), width_m, length_m)
    return grids


def _plan_grids(weed_map: WeedMap, field: shapely.Geometry | None,
                grids: dict[str, CellGrid], *, threshold: float, buffer_m: float, rate: float,
                headland_m: float) -> dict[str, rates.CellPlan]:
    counts = mask_counts(weed_map, list(grids.values())) if weed_map.kind == "mask" else None
    plans = {}
    for i, (key, grid) in enumerate(grids.items()):
        metric = grid.crs if key == "field" else metric_crs(grid.crs, _centre(grid))
        boundary = None if field is None else _in_crs(field, weed_map.crs, grid.crs)
        default = counts[i][1] > 0 if counts else np.ones(grid.size, bool)
        in_field, cells, area = rates.field_cells(grid, boundary, default)
        if counts:
            weed, valid = counts[i]
            share = np.divide(weed, valid, out=np.zeros(grid.size), where=valid > 0)
        else:
            weed = polygon_weed_area(weed_map, grid, cells)
            share = np.divide(weed, area, out=np.zeros(grid.size), where=area > 0)
        boundary_m = None if field is None else _in_crs(field, weed_map.crs, metric)
        to_grid = None if metric.equals(grid.crs) else _tr(metric, grid.crs)
        headland = rates.headland_cells(grid, in_field, cells, headland_m, boundary_m, to_grid)
        plans[key] = rates.plan(grid, in_field, cells, area, weed, share, headland,
                                threshold=threshold, buffer_m=buffer_m, rate=rate)
    return plans


def _centre(grid: CellGrid) -> tuple[float, float]:
    return (grid.x0 + grid.n_cols * grid.width / 2, grid.y0 + grid.n_rows * grid.length / 2)


def _in_crs(geom: shapely.Geometry, src: CRS, dst: CRS) -> shapely.Geometry:
    if src.equals(dst):
        return geom
    segment = max(np.ptp(np.reshape(geom.bounds, (2, 2)), axis=0)) / 200
    return shapely.make_valid(to_crs(geom, _tr(src, dst), segment))


def _tr(src: CRS, dst: CRS) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def grid_summary(plan: rates.CellPlan, rate: float) -> dict[str, Any]:
    """Areas, product and cell counts of one grid; areas are sums over its field cells."""
    g = plan.grid
    field_ha = float(plan.area_m2[plan.field].sum()) / 10_000
    sprayed_ha = float(plan.area_m2[plan.sprayed].sum()) / 10_000
    return {
        "crs": g.crs.to_string(), "heading_deg": g.heading_deg, "cell_width_m": g.width_m,
        "cell_length_m": g.length_m, "columns": g.n_cols, "rows": g.n_rows,
        "cells": int(plan.field.sum()), "cells_sprayed": int(plan.sprayed.sum()),
        "cells_unsprayed": int((plan.field & ~plan.sprayed).sum()),
        "cells_triggered": int(plan.triggered.sum()),
        "cells_with_weed": int((plan.field & (plan.weed_share > 0)).sum()),
        "cells_headland": int(plan.headland.sum()),
        "field_area_ha": field_ha, "sprayed_area_ha": sprayed_ha,
        "unsprayed_area_ha": field_ha - sprayed_ha,
        "sprayed_pct": 100 * sprayed_ha / field_ha if field_ha else 0.0,
        "product": rate * sprayed_ha, "broadcast_product": rate * field_ha,
        "savings_pct": 100 * (1 - sprayed_ha / field_ha) if field_ha else 0.0,
    }


def build_report(weed_map: WeedMap, params: dict[str, Any], plans: dict[str, rates.CellPlan],
                 seconds: float) -> dict[str, Any]:
    """Everything ``prescription.json`` says: input identity, parameters, outputs, per grid."""
    p = weed_map.path
    return {
        "agriseg_version": __version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "input": {"path": str(p.resolve()), "name": p.name, "kind": weed_map.kind,
                  "sha256": file_sha256(p), "crs": weed_map.crs.to_string(),
                  "weed_classes": list(weed_map.weed_names),
                  "weed_class_ids": list(weed_map.weed_ids)},
        "parameters": params,
        "product_unit": ddi_for(params["units"])[2],
        "outputs": {f: OUTPUT_NAMES[f] for f in params["formats"]} | {"report": REPORT_NAME},
        "grids": {k: grid_summary(v, params["rate"]) for k, v in plans.items()},
        "seconds": round(seconds, 3),
    }
