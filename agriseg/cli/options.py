"""Options shared by several commands, defined once so they read the same everywhere."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from agriseg.constants import BACKENDS, BLEND_MODES, DEVICES, RESAMPLE_MODES, TTA_MODES


def _parse_bands(ctx: click.Context, param: click.Parameter, value: str | None
                 ) -> list[int] | None:
    if not value:
        return None
    try:
        bands = [int(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected 1-based band numbers like 1,2,3") \
            from None
    if any(b < 1 for b in bands):
        raise click.BadParameter(f"{value!r}: band numbers start at 1")
    return bands


def overwrite_opt(f: Callable) -> Callable:
    return click.option("--overwrite", is_flag=True, help="Replace existing outputs.")(f)


def json_opt(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print a machine-readable JSON summary.")(f)


def bands_opt(f: Callable) -> Callable:
    return click.option("--bands", callback=_parse_bands, metavar="1,2,3",
                        help="Raster bands to feed the model, in the model's order "
                             "(default: match band names, else file order).")(f)


def patch_opts(f: Callable) -> Callable:
    f = click.option("--overlap", "overlap_px", type=click.IntRange(min=0), default=None,
                     help="Overlap between neighbouring patches, pixels [default: 1/8 of the "
                          "patch size].")(f)
    f = click.option("--patch-size", "patch_px", type=click.IntRange(min=1), default=None,
                     help="Patch side in pixels [default: the model's].")(f)
    return f


def adapt_opts(f: Callable) -> Callable:
    """How imagery that does not match the model (pixel size, value range) is adapted."""
    f = click.option("--input-range", default="auto", show_default=True,
                     metavar="auto|model|MIN,MAX",
                     help="Raster values onto the model's range: auto stretches each band's "
                          "2-98% percentiles (from overviews or a sample) when the dtype is "
                          "not the model's; model takes values as they are; MIN,MAX maps "
                          "that range.")(f)
    f = click.option("--resample", type=click.Choice(RESAMPLE_MODES), default="auto",
                     show_default=True,
                     help="auto reads a raster whose pixel size is more than 10% off the "
                          "model's at the model's pixel size; outputs keep the raster's "
                          "grid.")(f)
    return f


def inference_opts(f: Callable) -> Callable:
    f = adapt_opts(f)
    f = click.option("--tta", type=click.Choice(TTA_MODES), default="none", show_default=True,
                     help="Test-time augmentation: average the class probabilities over the "
                          "4 flips or the 8 rotations/reflections of each patch (4x or 8x "
                          "the model time).")(f)
    f = click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="CPU threads for the model and GDAL [default: all cores].")(f)
    f = click.option("--backend", type=click.Choice(BACKENDS), default="auto",
                     show_default=True,
                     help="auto: ONNX Runtime on the CPU when installed (the checkpoint is "
                          "exported once and cached), PyTorch on CUDA.")(f)
    f = click.option("--blend", type=click.Choice(BLEND_MODES), default="hann",
                     show_default=True,
                     help="Merge overlapping patches by a Hann window or by centre-cropping.")(f)
    f = click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                     help="auto uses CUDA when available.")(f)
    f = click.option("--batch-size", default="auto", show_default=True, metavar="N|auto",
                     help="Patches per forward pass; auto sizes batches to the GPU's free "
                          "memory (1 on the CPU).")(f)
    return f


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def parse_names(ctx: click.Context, param: click.Parameter, value: str | None
                ) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def vector_opts(f: Callable) -> Callable:
    """Clean-up and export options shared by ``vectorize`` and ``map``."""
    f = click.option("--crs", default=None, metavar="CRS",
                     help="Reproject polygons on export, e.g. EPSG:4326.")(f)
    f = click.option("--connectivity", type=click.Choice(["4", "8"]), default="4",
                     show_default=True,
                     help="Pixels joined by edges only (4) or also by corners (8).")(f)
    f = click.option("--simplify", "simplify_m", type=click.FloatRange(min=0), default=0.0,
                     metavar="METRES",
                     help="Simplify boundaries by this tolerance; neighbours keep identical "
                          "shared edges (no gaps or overlaps).")(f)
    f = click.option("--fill-holes", "fill_holes_m2", type=click.FloatRange(min=0),
                     default=0.0, metavar="M2",
                     help="Fill background holes smaller than this inside regions.")(f)
    f = click.option("--min-area", "min_area_m2", type=click.FloatRange(min=0), default=0.0,
                     metavar="M2",
                     help="Merge regions smaller than this into their surroundings before "
                          "polygonizing (no holes are left behind).")(f)
    f = click.option("--classes", callback=parse_names, metavar="crop,weed",
                     help="Classes to export, by name or id [default: all but "
                          "background].")(f)
    return f


def map_opts(f: Callable) -> Callable:
    """What ``map`` and ``batch`` share: the model, the polygon format, and the prediction
    and vectorization options."""
    from agriseg.vector.formats import FORMATS

    for deco in (vector_opts, bands_opt, inference_opts, patch_opts):
        f = deco(f)
    f = click.option("-f", "--format", "fmt", type=click.Choice(sorted(FORMATS)),
                     default="gpkg", show_default=True, help="Polygon format.")(f)
    return click.option("-m", "--model", "model_path", default=None,
                        type=click.Path(dir_okay=False),
                        help="Checkpoint (.safetensors) with its model card [default: the "
                             "model shipped with agriseg].")(f)


def format_area(m2: float) -> str:
    """Hectares for field-sized areas, square metres for small ones."""
    return f"{m2 / 10_000:.4f} ha" if m2 >= 1000 else f"{m2:.2f} m²"
