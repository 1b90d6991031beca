"""The one-command field mapping job: raster in, a documented folder of results out.

``map_field`` chains the library's steps — predict (class mask + confidence COGs), vectorize
(polygons with areas) — and writes ``summary.json`` with per-class areas, the weed share of the
vegetated area, the input's and model's identity, the parameters and timings. The folder
appears whole or not at all, so a cron job or a Dask worker never sees half a result.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agriseg import __version__
from agriseg.errors import ModelMismatchError, first_line
from agriseg.hashing import file_sha256
from agriseg.infer.engines import Engine, model_card
from agriseg.infer.pipeline import PredictResult, predict_raster
from agriseg.models.default import model_or_default
from agriseg.options import PredictOptions, VectorizeOptions, split_options
from agriseg.outputs import atomic_dir
from agriseg.raster.io import open_raster, pixel_size_m, select_bands
from agriseg.raster.preview import render_preview
from agriseg.styles import style_path
from agriseg.vector.export import FORMATS, format_for
from agriseg.vector.vectorize import VectorizeResult, vectorize_mask

if TYPE_CHECKING:
    from agriseg.models.checkpoint import Model

MASK_NAME = "mask.tif"
CONFIDENCE_NAME = "confidence.tif"
SUMMARY_NAME = "summary.json"
README_NAME = "README.txt"
PREVIEW_NAME = "preview.png"

log = logging.getLogger("agriseg")
AREA_DEFINITIONS = {
    "area_m2_pixels": "the class mask's pixels of the class times their ground area: the map "
                      "as predicted (vegetated area and weed share are computed from these)",
    "area_m2_polygons": "the sum of the class's polygons' area_m2 as written, after sieving "
                        "(min_area_m2, fill_holes_m2) and simplification (simplify_m); null "
                        "for classes not turned into polygons (background, or left out by "
                        "--classes)",
}


@dataclass
class MapResult:
    out_dir: Path
    summary: dict[str, Any]


def map_field(src: str | os.PathLike, out_dir: str | os.PathLike, *,
              model: str | os.PathLike | Model | None = None,
              predict_options: PredictOptions | None = None,
              vector_options: VectorizeOptions | None = None, fmt: str = "gpkg",
              overwrite: bool = False, progress: bool = False, **option_kw: Any) -> MapResult:
    """Map one field: write the mask, confidence, polygons, summary and README to ``out_dir``.

    Parameters
    ----------
    src
        The field's raster (GeoTIFF orthomosaic or any GDAL-readable file).
    out_dir
        The folder to create; it appears only when everything in it is written.
    model
        A checkpoint path, a loaded :class:`~agriseg.models.checkpoint.Model`, or None for
        the default model shipped with agriseg.
    predict_options, vector_options, **option_kw
        :class:`~agriseg.options.PredictOptions` and :class:`~agriseg.options.VectorizeOptions`,
        and/or any of their fields as keywords (``batch_size=4, min_area_m2=0.01``).
    fmt
        Polygon format: gpkg (default), shp, geojson, fgb or parquet.
    overwrite, progress
        Replace an existing folder; show progress bars on stderr.

    Returns
    -------
    MapResult
        ``out_dir`` and the ``summary`` dict written to ``summary.json``.

    Raises
    ------
    AgrisegError
        Bad raster, checkpoint or option, a raster that does not fit the model, or an existing
        folder without ``overwrite``. Nothing is left behind.
    """
    t0 = time.perf_counter()
    popts, vopts = split_options(option_kw, predict_options, vector_options)
    fmt = format_for(f"fields.{fmt}", fmt)
    polygons_name = f"fields{FORMATS[fmt].suffix}"
    if not hasattr(model, "card"):  # a path (None: the default model), not a loaded model
        model = model_or_default(model)  # the path summary.json names
    card = model_card(model)  # a bad checkpoint fails before the folder is made
    with atomic_dir(out_dir, overwrite) as tmp:
        pred = predict_raster(src, tmp / MASK_NAME, model=model, options=popts,
                              confidence=tmp / CONFIDENCE_NAME, progress=progress)
        vec = vectorize_mask(tmp / MASK_NAME, tmp / polygons_name, options=vopts,
                             confidence=tmp / CONFIDENCE_NAME, fmt=fmt,
                             source=Path(src).name, progress=progress)
        params = {**popts.summary(pred.patch_px, pred.overlap_px), **vopts.summary(),
                  "format": fmt, "device_used": pred.device, "backend_used": pred.backend,
                  "batch_size_used": pred.batch_size,
                  "resampled": pred.resample, "input_range_applied": pred.input_range}
        preview = _try_preview(src, tmp, card, popts.bands, pred.warnings)
        summary = build_summary(src, model, card, pred, vec, params,
                                polygons_name, time.perf_counter() - t0, preview)
        (tmp / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n")
        (tmp / README_NAME).write_text(folder_readme(polygons_name, vec.format, preview))
    return MapResult(out_dir=Path(out_dir), summary=summary)


def _try_preview(raster, folder: Path, card, bands, warnings: list[str]) -> bool:
    """Render the preview; a failure is a warning (added to ``warnings``), never the job's end:
    the mask and polygons are what the user came for."""
    try:
        render_preview(raster, folder / MASK_NAME, folder / PREVIEW_NAME, colors=card.colors,
                       rgb_bands=_rgb_bands(raster, bands))
    except Exception as e:  # noqa: BLE001 - any failure here must not cost the map
        msg = f"preview not written: {type(e).__name__}: {first_line(e)}"
        log.warning("%s: %s", raster, msg)
        warnings.append(msg)
        return False
    return True


def _low_confidence_share(pred: PredictResult) -> float | None:
    """The share of pixels mapped as a plant class (not background) whose confidence is below
    60%: a high share says the model meets a field unlike its training data."""
    vegetated = sum(n for name, n in list(pred.class_pixels.items())[1:])
    if pred.low_confidence_vegetation_pixels is None or not vegetated:
        return None
    return pred.low_confidence_vegetation_pixels / vegetated


def build_summary(raster, model, card, pred: PredictResult, vec: VectorizeResult,
                  params: dict[str, Any], polygons_name: str, seconds: float,
                  preview: bool = True) -> dict[str, Any]:
    """Everything a person or a script needs to trust and compare a field map."""
    per_class = {}
    for cid, name in enumerate(card.classes):
        px_m2 = vec.pixel_area_m2_per_class.get(name, 0.0)
        poly_m2 = vec.area_m2_per_class.get(name, 0.0) if name in vec.exported else None
        per_class[name] = {
            "class_id": cid, "pixels": vec.pixels_per_class.get(name, 0),
            "area_m2_pixels": px_m2, "area_ha_pixels": px_m2 / 10_000.0,
            "polygons": vec.polygons_per_class.get(name, 0),
            "area_m2_polygons": poly_m2,
            "area_ha_polygons": None if poly_m2 is None else poly_m2 / 10_000.0}
    vegetated = sum(v["area_m2_pixels"] for v in per_class.values() if v["class_id"] != 0)
    weed = sum(v["area_m2_pixels"] for k, v in per_class.items() if "weed" in k.lower())
    return {
        "agriseg_version": __version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "input": _input_identity(raster),
        "model": _model_identity(model, card),
        "parameters": params,
        "outputs": {"mask": MASK_NAME, "confidence": CONFIDENCE_NAME,
                    "polygons": polygons_name, "polygons_layer": vec.layer,
                    "summary": SUMMARY_NAME,
                    **({"preview": PREVIEW_NAME} if preview else {})},
        "areas": AREA_DEFINITIONS,
        "classes": per_class,
        "polygons": vec.polygons,
        "vegetated_area_ha": vegetated / 10_000.0,
        "weed_share_of_vegetation": (weed / vegetated) if vegetated else None,
        "low_confidence_share_of_vegetation": _low_confidence_share(pred),
        "nodata_pixels": vec.nodata_pixels,
        "warnings": pred.warnings,
        "timings_s": {"predict": round(pred.seconds, 3), "model": round(pred.model_seconds, 3),
                      "vectorize": round(vec.seconds, 3), "total": round(seconds, 3)},
    }


def _rgb_bands(raster, bands) -> list[int]:
    """Bands to show in the preview: red/green/blue as the models match them, else the first
    three the model took."""
    with open_raster(raster) as src:
        try:
            return select_bands(src, ("red", "green", "blue"))
        except ModelMismatchError:
            return list(bands or [1, 2, 3])[:3]


def _input_identity(raster) -> dict[str, Any]:
    p = Path(raster)
    with open_raster(p) as src:
        return {"path": str(p.resolve()), "name": p.name, "bytes": p.stat().st_size,
                "width": src.width, "height": src.height, "bands": src.count,
                "dtype": src.dtypes[0], "crs": src.crs.to_string() if src.crs else None,
                "pixel_size_m": pixel_size_m(src), "bounds": list(src.bounds)}


def _model_identity(model, card) -> dict[str, Any]:
    p = model.model_path if isinstance(model, Engine) else \
        getattr(model, "path", None) if hasattr(model, "card") else Path(model)
    return {"path": str(p.resolve()) if p else None, "sha256": file_sha256(p) if p else None,
            "name": card.name,
            "arch": card.arch, "bands": list(card.bands), "classes": list(card.classes),
            "dtype": card.dtype, "patch_px": card.patch_px, "pixel_size_m": card.pixel_size_m,
            "trained_with": card.agriseg_version, "metrics": card.metrics}


def folder_readme(polygons_name: str, fmt: str, preview: bool = True) -> str:
    mask_qml, conf_qml = (style_path(n).name for n in (MASK_NAME, CONFIDENCE_NAME))
    text = f"""agriseg field map ({__version__})

{MASK_NAME}        class mask, Cloud-Optimized GeoTIFF, uint8 class ids (see its colour table
                and CLASS_<id> tags), 255 = no data; same grid and CRS as the input raster
{CONFIDENCE_NAME}  probability of the predicted class in percent (0-100), 255 = no data
{polygons_name:<15} polygons ({FORMATS[fmt].description}), one feature per connected region:
                class_id, class_name, area_m2, area_ha (the polygon's own area, as
                written: after sieving and simplifying), perim_m (metres even for geographic
                CRSs), mean_conf (mean of {CONFIDENCE_NAME} inside), source (input raster);
                layer <input name>_class_polygons
{SUMMARY_NAME}     per class: the mask's area (area_m2_pixels) and the polygons' area
                (area_m2_polygons) with their count; weed share of the vegetated area (from
                the mask); input and model identity (sha256), parameters, timings
"""
    if preview:
        text += (f"{PREVIEW_NAME}      quick look: the class map over the image (crop, "
                 "weed... tinted)\n")
    text += f"""{mask_qml:<15} QGIS style of {MASK_NAME}: only the classes, named (QGIS loads it)
{MASK_NAME}.aux.xml  the class names as GDAL category names (gdalinfo, QGIS legend)
{conf_qml:<15} QGIS style of {CONFIDENCE_NAME}: 0-100 %, red to green
"""
    if fmt == "gpkg":
        text += (f"{'':<15} {polygons_name} keeps its QGIS style inside (layer_styles): "
                 "class colours and names\n")
    else:
        text += (f"{Path(polygons_name).with_suffix('.qml').name:<15} QGIS style of "
                 f"{polygons_name}: class colours and names\n")
    return text + "Keep each .qml/.aux.xml with its data file: copy or delete them together.\n"
