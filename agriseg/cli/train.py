"""``agriseg train``: train a model from a YAML config, any key overridable."""

from __future__ import annotations

import click

from agriseg.cli.options import echo_json, json_opt


@click.command("train", context_settings={"ignore_unknown_options": False})
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Training config (YAML), e.g. configs/train/sample.yaml.")
@click.option("--resume", is_flag=True, help="Continue the run in the config's out_dir.")
@click.option("--folds", type=int, default=None, metavar="K",
              help="Cross-validate: K models, each validated on its own 1/K of the images "
                   "(out_dir/fold-1...; cv.json has per-fold and mean ± std IoU).")
@click.option("--budget", type=float, default=None, metavar="MINUTES",
              help="Measure the first steps and choose the epochs so that the schedule ends "
                   "when the budget does (the whole cross-validation with --folds).")
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@json_opt
@click.pass_context
def command(ctx: click.Context, config_path: str | None, resume: bool, folds: int | None,
            budget: float | None, overrides: tuple[str, ...], as_json: bool) -> None:
    """Train a segmentation model on labelled rasters.

    KEY=VALUE pairs override the config with YAML values and dotted keys, e.g.
    `epochs=5 arch.encoder_name=resnet18 out_dir=runs/try1`. All inputs are checked before
    training starts. Checkpoints (best.safetensors, last.safetensors), the training state,
    config.yaml and metrics.csv/json are written to out_dir.
    """
    from agriseg.training.config import load_config

    extra = [f"budget_minutes={budget}"] if budget is not None else []
    cfg = load_config(config_path, [*overrides, *extra])
    progress = not ctx.obj["quiet"]
    if folds is not None:
        from agriseg.crossval import cross_validate, format_cv_table  # imports torch

        cv = cross_validate(cfg, folds=folds, resume=resume, progress=progress)
        if as_json:
            echo_json(cv)
        else:
            click.echo(format_cv_table(cv))
        return
    from agriseg.training.loop import train  # imports torch: only when run

    r = train(cfg, resume=resume, progress=progress)
    if as_json:
        echo_json(vars(r))
        return
    if r.budget:
        b = r.budget
        click.echo(f"budget {b['budget_minutes']} min: {b['step_s']:.3f} s/step measured -> "
                   f"{b['epochs']} epochs ({b['total_steps']} schedule steps)")
    click.echo(f"{r.best_checkpoint}: best validation mIoU {r.best_miou:.4f} at epoch "
               f"{r.best_epoch + 1} of {r.epochs_run}, {r.seconds / 60:.1f} min")
