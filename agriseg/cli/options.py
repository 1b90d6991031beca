"""Options shared by several commands, defined once so they read the same everywhere."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from agriseg.infer.blending import BLEND_MODES
from agriseg.infer.predictor import DEVICES


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


def inference_opts(f: Callable) -> Callable:
    f = click.option("--blend", type=click.Choice(BLEND_MODES), default="hann",
                     show_default=True,
                     help="Merge overlapping patches by a Hann window or by centre-cropping.")(f)
    f = click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                     help="auto uses CUDA when available.")(f)
    f = click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
                     help="Patches per forward pass.")(f)
    return f


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
