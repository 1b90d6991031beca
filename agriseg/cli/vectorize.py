"""``agriseg vectorize``: field polygons with areas from a class-mask GeoTIFF."""

from __future__ import annotations

from typing import Any

import click

from agriseg.cli.options import echo_json, format_area, json_opt, overwrite_opt, vector_opts
from agriseg.options import VectorizeOptions
from agriseg.vector.formats import FORMATS


@click.command("vectorize")
@click.argument("mask", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Polygon file; the format follows the suffix unless --format is given.")
@click.option("-f", "--format", "fmt", type=click.Choice(sorted(FORMATS)), default=None,
              help="Output format [default: from the suffix: .gpkg, .shp, .geojson, .fgb, "
                   ".parquet].")
@click.option("--confidence", type=click.Path(dir_okay=False), default=None,
              help="Confidence raster on the mask's grid: adds each polygon's mean_conf.")
@click.option("--layer", default=None,
              help="Layer name [default: <mask name>_class_polygons].")
@vector_opts
@overwrite_opt
@json_opt
@click.pass_context
def command(ctx: click.Context, mask: str, output: str, fmt: str | None,
            confidence: str | None, layer: str | None, overwrite: bool, as_json: bool,
            **options: Any) -> None:
    """Turn the class mask MASK into polygons with class, area (m², ha) and perimeter (m).

    Background (0) and no-data (255) never become polygons. Regions cut by the internal strip
    seams are merged, so the result is the same as one pass over the whole mask.
    """
    from agriseg.vector.vectorize import vectorize_mask  # heavy: only when run

    r = vectorize_mask(mask, output, options=VectorizeOptions(**options),
                       confidence=confidence, fmt=fmt, layer=layer, overwrite=overwrite,
                       progress=not ctx.obj["quiet"])
    if as_json:
        echo_json(vars(r))
        return
    parts = ", ".join(f"{k} {v} ({format_area(r.area_m2_per_class[k])})"
                      for k, v in r.polygons_per_class.items()) or "no polygons"
    click.echo(f"{r.path}: {r.polygons} polygons ({parts}) in {r.seconds:.1f} s")
