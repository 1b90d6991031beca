"""``agriseg map``: the one-command field mapping job."""

from __future__ import annotations

from typing import Any

import click

from agriseg.cli.options import echo_json, format_area, json_opt, map_opts, overwrite_opt


@click.command("map")
@click.argument("field", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to create for the results.")
@map_opts
@overwrite_opt
@json_opt
@click.pass_context
def command(ctx: click.Context, field: str, out_dir: str, model_path: str | None, fmt: str,
            overwrite: bool, as_json: bool, **options: Any) -> None:
    """Map crops and weeds in FIELD: class mask, confidence, polygons and summary.json.

    OUTDIR gets mask.tif (COG), confidence.tif (COG), fields.<format>, summary.json and a
    README.txt describing them, with QGIS styles (.qml; inside a GeoPackage) and the mask's
    class names (mask.tif.aux.xml); it appears only when everything is written.
    """
    from agriseg.jobs.fieldmap import map_field  # imports torch: only when run

    r = map_field(field, out_dir, model=model_path, fmt=fmt, overwrite=overwrite,
                  progress=not ctx.obj["quiet"], **options)
    s = r.summary
    if as_json:
        echo_json(s)
        return
    click.echo(f"{r.out_dir}: {s['input']['name']} mapped in {s['timings_s']['total']:.1f} s "
               f"with {s['model']['name']} on {s['parameters']['backend_used']}/"
               f"{s['parameters']['device_used']}")
    click.echo(f"  {'class':<12} {'mask area':>14}  {'polygons':>8} {'polygon area':>14}")
    for name, c in s["classes"].items():
        poly = c["area_m2_polygons"]
        click.echo(f"  {name:<12} {format_area(c['area_m2_pixels']):>14}  "
                   f"{c['polygons'] if poly is not None else '-':>8} "
                   f"{format_area(poly) if poly is not None else '-':>14}")
    share = s["weed_share_of_vegetation"]
    if share is not None:
        click.echo(f"  weed share of vegetated area: {100 * share:.1f}%")
