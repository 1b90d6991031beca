"""``agriseg models``: the architectures and encoders the registry can build."""

from __future__ import annotations

import click

from agriseg.cli.options import echo_json, json_opt


@click.command("models")
@click.option("--encoders/--no-encoders", default=True, show_default=True,
              help="Also list encoder names.")
@json_opt
def command(encoders: bool, as_json: bool) -> None:
    """List model architectures (with their parameter count for 3 classes and RGB input on
    the default encoder) and encoders."""
    from agriseg.models.registry import (
        DEFAULT_ENCODER,
        list_architectures,
        list_encoders,
        parameter_count,
    )

    archs = list_architectures()
    params = {a.name: parameter_count(a.name) for a in archs}
    names = list_encoders() if encoders else []
    if as_json:
        echo_json({"architectures": {a.name: a.description for a in archs},
                   "parameters": params, "encoders": names, "default_encoder": DEFAULT_ENCODER})
        return
    click.echo(f"Architectures (parameters for 3 classes, RGB, encoder {DEFAULT_ENCODER} "
               "unless the architecture has its own backbone):")
    for a in archs:
        click.echo(f"  {a.name:<14} {params[a.name] / 1e6:6.2f} M  {a.description}")
    if names:
        click.echo(f"Encoders ({len(names)}; default {DEFAULT_ENCODER}; timm encoders as "
                   "tu-<name>):")
        for n in names:
            click.echo(f"  {n}")
