"""``agriseg evaluate``: score a checkpoint against labelled rasters (IoU, F1, confusion)."""

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


class _GreedyPathsCommand(click.Command):
    """A command whose ``--images``/``--labels`` take every path up to the next option.

    ``--images a.tif b.tif`` (what a shell glob expands to) becomes ``--images a.tif --images
    b.tif`` before click parses the arguments, so the options themselves are plain repeatable
    (``multiple=True``) options and click's parser is used as documented.
    """

    greedy = ("--images", "--labels")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, spread_values(args, self.greedy))


def spread_values(args: list[str], greedy: tuple[str, ...]) -> list[str]:
    """Repeat each option of ``greedy`` before every further value that follows it."""
    out: list[str] = []
    current: str | None = None  # the greedy option whose values are being read
    first = False  # the next value is the option's own (no repeat needed)
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        if arg.startswith("-") and arg != "-":
            name, eq, _ = arg.partition("=")
            current = name if name in greedy else None
            first = not eq
            out.append(arg)
        elif current is not None:
            out += [arg] if first else [current, arg]
            first = False
        else:
            out.append(arg)
    return out


@click.command("evaluate", cls=_GreedyPathsCommand)
@click.option("-m", "--model", "model_path", default=None, type=click.Path(dir_okay=False),
              help="Checkpoint (.safetensors) with its model card [default: the model "
                   "shipped with agriseg].")
@click.option("--images", multiple=True, required=True, metavar="PATHS...",
              help="Image rasters: files, folders or quoted globs.")
@click.option("--labels", multiple=True, required=True, metavar="PATHS...",
              help="Label rasters (255 = unknown) or polygons: one per image in the same "
                   "order, a folder/glob matched by name (IMG_1.tif <-> IMG_1_labels.tif), or "
                   "one file for all images.")
@click.option("--label-field", default=None, metavar="NAME",
              help="Attribute of the polygons holding the class: integer ids or the model's "
                   "class names [default: class_id].")
@click.option("-o", "--output", "out_json", type=click.Path(dir_okay=False), default=None,
              help="Also write the metrics (overall and per image) to this JSON file.")
@patch_opts
@inference_opts
@bands_opt
@overwrite_opt
@json_opt
@click.pass_context
def command(ctx: click.Context, model_path: str | None, images: tuple[str, ...],
            labels: tuple[str, ...], label_field: str | None, out_json: str | None,
            overwrite: bool, as_json: bool, **options: Any) -> None:
    """Predict IMAGES as ``predict`` does and compare with LABELS, pixel by pixel.

    Prints per-class IoU, F1, precision, recall and support, the mIoU (mean over classes
    present in the labels or the prediction), pixel accuracy and the confusion matrix.
    Unknown labels (255) and image no-data are not counted.
    """
    from agriseg.jobs.evaluate import evaluate_model  # imports torch: only when run
    from agriseg.metrics import format_table

    result = evaluate_model(list(images), list(labels), model=model_path,
                            options=PredictOptions(**options), label_field=label_field,
                            out_json=out_json, overwrite=overwrite,
                            progress=not ctx.obj["quiet"])
    if as_json:
        echo_json(result)
        return
    for item in result["per_image"]:
        miou = "-" if item["miou"] is None else f"{item['miou']:.4f}"
        click.echo(f"{item['image']}: mIoU {miou} ({item['pixels']:,} labelled pixels)")
    click.echo(f"\n{result['images']} image(s), model {result['model']}\n")
    click.echo(format_table(result["overall"], result["classes"]))
    if out_json:
        click.echo(f"\nmetrics written to {out_json}")
