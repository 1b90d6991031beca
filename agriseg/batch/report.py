"""A batch run's report (CSV + JSON) and the output root's index of mapped rasters.

``runs/<UTC>/report.csv`` and ``report.json`` are rewritten (atomically) after every raster, so
even a run that is killed leaves a report that is true up to its last finished raster.
``index.gpkg`` holds one footprint per mapped raster in the whole output root, whichever run
mapped it, in WGS84 (rasters of one root may come in different UTM zones); it is rebuilt from
the completion records at the end of each run and replaced whole.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from agriseg.batch.state import RECORD_NAME, read_record
from agriseg.outputs import atomic_output

REPORT_COLUMNS = ("raster", "folder", "status", "reason", "crop_ha", "weed_ha", "weed_share",
                  "polygons", "seconds", "mpx_per_s", "attempts")
INDEX_NAME = "index.gpkg"
INDEX_COLUMNS = ("folder", "raster", "completed_utc", "crop_ha", "weed_ha", "weed_share",
                 "polygons", "polygons_file", "width", "height", "raster_crs", "model",
                 "model_sha256")
INDEX_CRS = "EPSG:4326"

log = logging.getLogger("agriseg")


def write_report(run_dir: Path, rows: list[dict[str, Any]], run: dict[str, Any]) -> None:
    """``report.csv`` (one row per raster) and ``report.json`` (the run plus the rows)."""
    with atomic_output(run_dir / "report.csv", overwrite=True) as tmp, \
            open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, REPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in REPORT_COLUMNS})
    with atomic_output(run_dir / "report.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps({"run": run, "rasters": rows}, indent=2, default=str) + "\n")


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def write_index(outroot: Path) -> int:
    """Rebuild ``index.gpkg`` from every completion record under ``outroot``; return the
    number of footprints. Rasters without a CRS cannot be placed and are left out."""
    import geopandas as gpd
    import shapely
    from pyproj import CRS, Transformer

    from agriseg.vector.export import write_polygons

    rows, geoms = [], []
    for folder in sorted(p for p in outroot.iterdir() if (p / RECORD_NAME).is_file()):
        record = read_record(folder)
        if record is None:
            continue
        fig = record.get("figures", {})
        if not fig.get("crs"):
            log.warning("%s: raster has no CRS; left out of %s", folder.name, INDEX_NAME)
            continue
        box = shapely.segmentize(shapely.box(*fig["bounds"]),
                                 max(fig["bounds"][2] - fig["bounds"][0],
                                     fig["bounds"][3] - fig["bounds"][1]) / 16)
        to_wgs84 = Transformer.from_crs(CRS(fig["crs"]), INDEX_CRS, always_xy=True)
        geoms.append(shapely.transform(box, lambda xy, t=to_wgs84: _apply(t, xy)))
        rows.append({
            "folder": folder.name, "raster": record["input"]["path"],
            "completed_utc": record.get("completed_utc"), "crop_ha": fig.get("crop_ha"),
            "weed_ha": fig.get("weed_ha"), "weed_share": fig.get("weed_share"),
            "polygons": fig.get("polygons"), "polygons_file":
                f"{folder.name}/{fig.get('polygons_file', '')}",
            "width": fig.get("width"), "height": fig.get("height"), "raster_crs": fig["crs"],
            "model": fig.get("model_name"), "model_sha256": record["model"]["sha256"]})
    gdf = gpd.GeoDataFrame(rows, columns=list(INDEX_COLUMNS), geometry=geoms, crs=INDEX_CRS)
    write_polygons(gdf, outroot / INDEX_NAME, fmt="gpkg", layer="footprints", overwrite=True)
    return len(rows)


def _apply(transformer, xy):
    import numpy as np

    x, y = transformer.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])
