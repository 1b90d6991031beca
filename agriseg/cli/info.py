"""``agriseg info``: what is in a raster, and whether it fits a model."""

from __future__ import annotations

import click

from agriseg.cli.options import adapt_opts, bands_opt, echo_json, json_opt


@click.command("info")
@click.argument("raster", type=click.Path(dir_okay=False))
@click.option("-m", "--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint (.safetensors): also check whether RASTER fits its model card.")
@bands_opt
@adapt_opts
@json_opt
def command(raster: str, model_path: str | None, bands: list[int] | None, resample: str,
            input_range: str, as_json: bool) -> None:
    """Describe RASTER: size, bands, CRS, pixel size, no-data, layout, overviews, tags.

    With --model, also summarize the model card and say whether RASTER fits it ("fits: yes" or
    "fits: no" with each problem, plus what prediction would adapt with --resample and
    --input-range, and any warnings). This is a report: it exits 0 even when the
    raster does not fit; `agriseg predict` is what refuses. Unreadable inputs exit 2.
    """
    if bands and not model_path:
        raise click.UsageError("--bands only makes sense with --model")
    from agriseg.jobs.info import format_raster_info, raster_info  # heavy: only when run
    from agriseg.options import parse_input_range

    info = raster_info(raster, model=model_path, bands=bands, resample=resample,
                       input_range=parse_input_range(input_range))
    if as_json:
        echo_json(info)
    else:
        click.echo(format_raster_info(info))
