"""``agriseg export``: a checkpoint as an ONNX model with its model card inside."""

from __future__ import annotations

import click

from agriseg.cli.options import overwrite_opt


@click.command("export")
@click.option("-m", "--model", "model_path", default=None, type=click.Path(dir_okay=False),
              help="Checkpoint (.safetensors) [default: the model shipped with agriseg].")
@click.option("-o", "--output", "dst", required=True, type=click.Path(dir_okay=False),
              help="ONNX file to write.")
@click.option("--opset", type=click.IntRange(min=17), default=17, show_default=True,
              help="ONNX opset.")
@overwrite_opt
def command(model_path: str | None, dst: str, opset: int, overwrite: bool) -> None:
    """Export a checkpoint to ONNX (dynamic batch, height and width; raw logits out, softmax
    not included) with its model card in the file's metadata, for ONNX Runtime."""
    from agriseg.models.onnx_export import export_onnx  # imports torch: only when run

    path = export_onnx(model_path, dst, opset=opset, overwrite=overwrite)
    click.echo(f"{path}: ONNX opset {opset}, {path.stat().st_size / 1e6:.1f} MB")
