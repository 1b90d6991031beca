"""What is in a raster: the raster half of ``agriseg info`` (the model half is one layer up).

Most "the model output is garbage" reports come down to something a look at the file would have
shown: a uint16 raster fed to a uint8 model, bands in another order, no CRS, an alpha band read as
data. :func:`describe_raster` gathers all of that into one plain, JSON-ready dict (so ``--json``
and the text report say the same thing) and :func:`format_info` renders it for people.
Whether the raster fits a model is :mod:`agriseg.infer.fit`'s question, and the report that
combines both is :mod:`agriseg.jobs.info`.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import CRSError

from agriseg.raster.io import alpha_band, band_names, open_raster, pixel_size_m

_WKT_NAME = re.compile(r'^\s*[A-Z_]+\[\s*"([^"]*)"')


def describe_raster(path: str | os.PathLike) -> dict[str, Any]:
    """Describe the raster at ``path`` as plain, JSON-ready values (see :func:`describe`).

    Unreadable inputs raise the usual :class:`~agriseg.errors.AgrisegError` subclasses. Whether
    the raster fits a model is asked one layer up (:func:`agriseg.jobs.info.raster_info`).
    """
    with open_raster(path) as src:
        info = describe(src)
    info["path"] = str(path)
    return info


def describe(src: rasterio.DatasetReader) -> dict[str, Any]:
    """Everything ``info`` says about an open dataset, as plain JSON-ready values."""
    notes: list[str] = []
    crs = _crs_summary(src, notes)
    px_m = pixel_size_m(src)
    block_rows, block_cols = src.block_shapes[0]
    tiled = src.profile.get("tiled")
    if tiled is None:  # non-GTiff drivers: whole-width blocks are strips
        tiled = block_cols < src.width
    interleave = src.interleaving.name.lower() if src.interleaving else None
    return {
        "path": src.name,
        "driver": src.driver,
        "width": src.width,
        "height": src.height,
        "count": src.count,
        "bands": _bands(src),
        "crs": crs,
        "transform": list(src.transform)[:6],
        "pixel_size": [src.res[0], src.res[1]],
        "pixel_size_units": crs["units"] if crs else "pixels",
        "pixel_size_m": None if px_m is None else float(px_m),
        "bounds": list(src.bounds),
        "nodata": _nodata_summary(src),
        "layout": {"block_shape": [block_rows, block_cols], "tiled": bool(tiled),
                   "interleave": interleave},
        "compression": src.compression.name.lower() if src.compression else None,
        "overviews": list(src.overviews(1)),
        "tags": dict(src.tags()),
        "notes": notes,
    }


def _json_number(value: float | None) -> float | str | None:
    """NaN/inf as strings, so the JSON output stays valid JSON."""
    if value is None:
        return None
    return float(value) if math.isfinite(value) else str(value)


def _bands(src: rasterio.DatasetReader) -> list[dict[str, Any]]:
    names = band_names(src)
    return [{"index": i, "name": names[i - 1], "description": src.descriptions[i - 1],
             "colorinterp": src.colorinterp[i - 1].name, "dtype": src.dtypes[i - 1],
             "nodata": _json_number(src.nodatavals[i - 1]),
             "mask_flags": [f.name for f in src.mask_flag_enums[i - 1]]}
            for i in range(1, src.count + 1)]


def _crs_summary(src: rasterio.DatasetReader, notes: list[str]) -> dict[str, Any] | None:
    if src.transform.is_identity and not src.gcps[0]:
        notes.append("not georeferenced: coordinates are pixel row/column numbers")
    if src.crs is None:
        notes.append("no CRS: outputs will have none, and areas cannot be given in metres")
        return None
    crs = src.crs
    wkt = crs.to_wkt()
    match = _WKT_NAME.match(wkt)
    try:
        units = crs.units_factor[0]
    except CRSError:  # some custom CRSs have no parsable unit
        units = "unknown"
    if crs.is_geographic:
        notes.append("geographic CRS: pixel size in metres is approximate (at the centre)")
    return {"epsg": crs.to_epsg(), "name": match.group(1) if match else None,
            "geographic": bool(crs.is_geographic), "units": units, "wkt": wkt}


def _nodata_summary(src: rasterio.DatasetReader) -> dict[str, Any]:
    """Where "no data" comes from: a nodata value, an alpha band, or a mask band."""
    flags = src.mask_flag_enums[0]
    mask = None
    if MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags:
        sidecar = Path(f"{src.name}.msk").exists()
        mask = ".msk sidecar" if sidecar else "internal"
    return {"value": _json_number(src.nodata), "alpha_band": alpha_band(src), "mask": mask}


def number_text(v: float) -> str:
    """A number as ``info`` prints it: up to 10 significant digits, no trailing zeros."""
    return f"{v:.10g}"


_num = number_text


def _nodata_text(nd: dict[str, Any]) -> str:
    parts = []
    if nd["value"] is not None:
        value = nd["value"]
        parts.append(f"value {_num(value) if isinstance(value, float) else value}")
    if nd["alpha_band"]:
        parts.append(f"alpha band {nd['alpha_band']}")
    if nd["mask"]:
        parts.append(f"{nd['mask']} mask band")
    return ", ".join(parts) if parts else "none (every pixel is valid)"


def _band_lines(bands: list[dict[str, Any]]) -> list[str]:
    width = max(len(b["name"]) for b in bands)
    lines = []
    for b in bands:
        nodata = b["nodata"]
        nodata = "none" if nodata is None else _num(nodata) if isinstance(nodata, float) else nodata
        lines.append(f"  {b['index']:>3}  {b['name']:<{width}}  {b['colorinterp']:<9} "
                     f"{b['dtype']:<8} nodata {nodata}")
    return lines


def format_info(info: dict[str, Any]) -> str:
    """The human-readable report for a :func:`describe_raster` dict."""
    crs = info["crs"]
    if crs is None:
        crs_text = "none"
    else:
        code = f"EPSG:{crs['epsg']}" if crs["epsg"] else "no EPSG code"
        crs_text = f"{code} ({crs['name']})" if crs["name"] else code
    xres, yres = info["pixel_size"]
    px_m = info["pixel_size_m"]
    px_text = f"{_num(xres)} x {_num(yres)} {info['pixel_size_units']}"
    if px_m is not None:
        px_text += f" (~{px_m:.4g} m)"
    layout = info["layout"]
    rows, cols = layout["block_shape"]
    kind = "tiles" if layout["tiled"] else "strips"
    inter = f", {layout['interleave']}-interleaved" if layout["interleave"] else ""
    ovr = ", ".join(f"{f}x" for f in info["overviews"]) or "none"
    a, b, c, d, e, f = info["transform"]
    lines = [
        info["path"],
        f"driver:       {info['driver']}",
        f"size:         {info['width']} x {info['height']} px, {info['count']} "
        + ("band" if info["count"] == 1 else "bands"),
        "bands:",
        *_band_lines(info["bands"]),
        f"crs:          {crs_text}",
        f"transform:    {_num(a)}, {_num(b)}, {_num(c)}, {_num(d)}, {_num(e)}, {_num(f)}",
        f"pixel size:   {px_text}",
        "bounds:       " + ", ".join(_num(v) for v in info["bounds"])
        + " (left, bottom, right, top)",
        f"no-data:      {_nodata_text(info['nodata'])}",
        f"layout:       {kind} of {cols} x {rows} px{inter}",
        f"compression:  {info['compression'] or 'none'}",
        f"overviews:    {ovr}",
    ]
    tags = info["tags"]
    if tags:
        lines.append("tags:")
        lines += [f"  {k}={v}" for k, v in sorted(tags.items(), key=lambda kv: kv[0] != "classes")]
    lines += [f"note: {n}" for n in info["notes"]]
    return "\n".join(lines)
