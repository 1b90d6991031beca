"""``agriseg tile``: cut a raster (and its labels) into GeoTIFF patches plus an index."""

from __future__ import annotations

import click

from agriseg.cli.options import echo_json, json_opt, overwrite_opt, parse_names


@click.command("tile")
@click.argument("raster", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to create for the patches (must not exist unless --overwrite).")
@click.option("--patch-size", "patch_px", required=True, type=click.IntRange(min=1),
              help="Patch side in pixels (the patch is the raster where it is smaller).")
@click.option("--overlap", "overlap_px", type=click.IntRange(min=0), default=None,
              help="Overlap between neighbouring patches, pixels [default: 1/8 of the patch].")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="Label raster (any grid or CRS; resampled by nearest, 255 outside it or "
                   "at its nodata) or polygons (GeoPackage, Shapefile, GeoJSON...; pixels in "
                   "no polygon become 0 = background). Written to DIR/labels/ as uint8 with "
                   "nodata 255, also where the image is no-data.")
@click.option("--label-field", default=None, metavar="NAME",
              help="Attribute of the polygons holding the class: integer ids, or names with "
                   "--classes [default: class_id].")
@click.option("--classes", callback=parse_names, metavar="soil,crop,weed",
              help="Class names in id order, to read a --label-field of names (any case).")
@overwrite_opt
@json_opt
@click.pass_context
def command(ctx: click.Context, raster: str, out_dir: str, patch_px: int, overlap_px: int | None,
            labels: str | None, label_field: str | None, classes: list[str] | None,
            overwrite: bool, as_json: bool) -> None:
    """Cut RASTER into patches on the prediction grid, skipping all-no-data ones.

    Writes DIR/<stem>_rRRRR_cCCCC.tif per patch and DIR/index.gpkg (layer "patches") with each
    patch's footprint, file names, grid position, pixel window and valid fraction.
    """
    from agriseg.jobs.tiling import cut_tiles  # heavy: only when run

    result = cut_tiles(raster, out_dir, patch_px=patch_px, overlap_px=overlap_px,
                       labels=labels, label_field=label_field, classes=classes,
                       overwrite=overwrite, progress=not ctx.obj["quiet"])
    if as_json:
        echo_json(vars(result))
        return
    click.echo(f"{result.out_dir}: {result.written} patches written, {result.skipped} skipped "
               f"(all no-data) of {result.total} ({result.patch_px} px, {result.overlap_px} px "
               f"overlap{', with labels' if result.labels else ''}) in {result.seconds:.1f} s")
