"""``agriseg predict``: a class-mask COG from a raster and a checkpoint."""

from __future__ import annotations

from typing import Any

import click

from agriseg.cli.options import (
    bands_opt,
    echo_json,
    inference_opts,
    json_opt,
    overwrite_opt,
    patch_opts,
)
from agriseg.options import PredictOptions


@click.command("predict")
@click.argument("raster", type=click.Path(dir_okay=False))
@click.option("-m", "--model", "model_path", default=None, type=click.Path(dir_okay=False),
              help="Checkpoint (.safetensors) with its model card [default: the model "
                   "shipped with agriseg].")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Class-mask GeoTIFF (COG) to write.")
@click.option("--confidence", type=click.Path(dir_okay=False), default=None,
              help="Also write the winning class's probability (percent, uint8) here.")
@patch_opts
@inference_opts
@bands_opt
@overwrite_opt
@json_opt
@click.pass_context
def command(ctx: click.Context, raster: str, model_path: str | None, output: str,
            confidence: str | None, overwrite: bool, as_json: bool, **options: Any) -> None:
    """Label every pixel of RASTER with the model's classes.

    Beside the mask go its QGIS style (<name>.qml: class colours and names) and GDAL category
    names (<mask>.aux.xml); they are replaced with it.
    """
    from agriseg.infer.pipeline import predict_raster  # heavy: only when run

    result = predict_raster(raster, output, model=model_path, options=PredictOptions(**options),
                            confidence=confidence, overwrite=overwrite,
                            progress=not ctx.obj["quiet"])
    if as_json:
        echo_json(vars(result))
        return
    total = max(1, sum(result.class_pixels.values()))
    shares = ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in result.class_pixels.items())
    click.echo(f"{result.mask_path}: {result.width}x{result.height} px, {result.patches} patches "
               f"in {result.seconds:.1f} s on {result.backend}/{result.device} ({shares})")
