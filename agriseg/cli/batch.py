"""``agriseg batch``: map every new raster of folders, globs or manifests, unattended."""

from __future__ import annotations

from typing import Any

import click

from agriseg.cli.options import echo_json, json_opt, map_opts


def _parse_resources(ctx: click.Context, param: click.Parameter, value: str | None
                     ) -> dict[str, float] | None:
    if not value:
        return None
    out = {}
    for part in value.split(","):
        name, sep, amount = part.partition("=")
        try:
            out[name.strip()] = float(amount) if sep else 1.0
        except ValueError:
            raise click.BadParameter(f"{value!r}: expected NAME=AMOUNT like GPU=1") from None
        if not name.strip():
            raise click.BadParameter(f"{value!r}: expected NAME=AMOUNT like GPU=1")
    return out


@click.command("batch")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "outroot", required=True, type=click.Path(file_okay=False),
              help="Output root: one map folder per raster, runs/<UTC>/ reports, index.gpkg.")
@map_opts
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine (the local executor).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Run on a new local Dask cluster of N worker processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on a running Dask cluster, e.g. tcp://10.0.0.5:8786.")
@click.option("--resources", "resources", callback=_parse_resources, metavar="GPU=1",
              help="Dask worker resources each raster's task needs (runs only on workers "
                   "started with 'dask worker ADDRESS --resources GPU=1').")
@click.option("--retries", type=click.IntRange(min=0), default=0, show_default=True,
              help="Extra attempts for failures that may be transient (a dead or hung "
                   "worker, an I/O or memory error); never for a bad raster.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Stop a raster that takes longer (local executor).")
@click.option("--min-age", "min_age_s", type=click.FloatRange(min=0), default=0.0,
              metavar="SECONDS",
              help="Leave rasters modified less than this ago (still being copied) for the "
                   "next run.")
@click.option("--hash", "use_hash", is_flag=True,
              help="Recognise unchanged inputs by content (sha256), not size and mtime.")
@click.option("--force", is_flag=True, help="Redo every raster, done or not.")
@json_opt
@click.pass_context
def command(ctx: click.Context, inputs: tuple[str, ...], outroot: str, model_path: str | None,
            fmt: str, as_json: bool, **options: Any) -> None:
    """Map every raster in INPUTS into its own folder under OUTROOT, skipping finished ones.

    INPUTS are rasters, folders (searched recursively for .tif/.tiff), glob patterns or
    manifest CSVs (a 'path' column plus optional model, format, patch_px, bands... columns).
    Each raster's folder has the 'agriseg map' layout and a completion record; a re-run maps
    only new rasters and those whose input, model or parameters changed. A run that is
    killed leaves no partial folder, and the next run cleans up after it. Only one batch
    runs per OUTROOT at a time.

    Exit codes: 0 every raster mapped or already done (too-new ones wait for the next run),
    1 at least one raster failed (see OUTROOT/runs/<UTC>/report.csv), 2 usage error (bad
    option, missing input or model, OUTROOT in use by another batch).
    """
    from agriseg.batch.run import run_batch

    result = run_batch(inputs, outroot, model=model_path, fmt=fmt,
                       progress=not ctx.obj["quiet"] and not as_json,
                       echo=None if ctx.obj["quiet"] else lambda s: click.echo(s, err=True),
                       **options)
    if as_json:
        echo_json({"outroot": str(result.outroot), "run_dir": str(result.run_dir),
                   "counts": result.counts, "exit_code": result.exit_code,
                   "seconds": round(result.seconds, 3), "dashboard": result.dashboard,
                   "rasters": result.rows})
    elif not ctx.obj["quiet"]:  # failures were logged as errors as they happened
        click.echo(result.line())
    ctx.exit(result.exit_code)
