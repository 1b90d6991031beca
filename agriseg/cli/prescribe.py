"""``agriseg prescribe``: a spot-spray prescription (Shapefile zip, ISO-XML, GeoPackage) from a
weed map."""

from __future__ import annotations

import click

from agriseg.cli.options import echo_json, json_opt, overwrite_opt, parse_names
from agriseg.spray.isoxml import UNITS
from agriseg.spray.job import FORMATS


def _share(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """``1%`` or a fraction ``0.01``; a bare number above 1 is refused (is ``5`` 5% or 500%?)."""
    text = value.strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected a percentage like 1% or a fraction "
                                 f"like 0.01") from None
    if not 0 <= share <= 1:
        raise click.BadParameter(f"{value!r}: must lie from 0 to 100% (write 5% for five "
                                 f"percent)")
    return share


@click.command("prescribe")
@click.argument("weed_map", metavar="MAP", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Folder to create for the prescription.")
@click.option("--boundary", type=click.Path(dir_okay=False), default=None,
              help="Field boundary polygons, in the map's CRS [default: the map's data].")
@click.option("--cell-width", "cell_width_m", type=float, default=1.0, show_default=True,
              metavar="METRES", help="Cell size across travel: the spray section width.")
@click.option("--cell-length", "cell_length_m", type=float, default=1.0, show_default=True,
              metavar="METRES", help="Cell size along travel.")
@click.option("--heading", "heading_deg", type=float, default=0.0, show_default=True,
              metavar="DEGREES", help="Direction of travel, clockwise from north "
                                      "(Shapefile/GeoPackage; ISO-XML grids face north).")
@click.option("--threshold", default="1%", show_default=True, callback=_share,
              metavar="PCT%", help="Weed cover that triggers a cell; 0 sprays every cell "
                                   "with any weed.")
@click.option("--buffer", "buffer_m", type=float, default=0.5, show_default=True,
              metavar="METRES", help="Also spray cells closer than this to a triggered cell.")
@click.option("--rate", type=float, default=150.0, show_default=True,
              help="Application rate of sprayed cells.")
@click.option("--units", type=click.Choice(sorted(UNITS)), default="l/ha", show_default=True,
              help="Rate units (ISO-XML: DDI 1 volume or DDI 6 mass per area).")
@click.option("--headland", "headland_m", type=float, default=0.0, show_default=True,
              metavar="METRES", help="Spray this wide a strip inside the field edge at the "
                                     "rate everywhere.")
@click.option("-f", "--format", "formats", type=click.Choice(FORMATS), multiple=True,
              default=("shp",), show_default=True, help="Output format; repeat for several.")
@click.option("--weed-class", callback=parse_names, metavar="NAME|ID",
              help="Weed class(es), comma-separated [default: classes named *weed*].")
@overwrite_opt
@json_opt
def command(weed_map: str, output: str, overwrite: bool, as_json: bool, **options) -> None:
    """Turn the weed map MAP (class mask, 'agriseg map' folder or class polygons) into a
    spot-spray prescription: a grid of spray cells, each at the rate or 0."""
    from agriseg.spray import prescribe  # geopandas and scipy: only when run

    r = prescribe(weed_map, output, overwrite=overwrite, **options)
    if as_json:
        echo_json(r.report)
        return
    unit = r.report["product_unit"]
    for name, g in r.report["grids"].items():
        click.echo(f"{name} grid: {g['cells']} cells ({g['columns']}x{g['rows']}), sprayed "
                   f"{g['cells_sprayed']} = {g['sprayed_area_ha']:.4f} of "
                   f"{g['field_area_ha']:.4f} ha ({g['sprayed_pct']:.1f}%), product "
                   f"{g['product']:.2f} {unit} vs {g['broadcast_product']:.2f} {unit} "
                   f"broadcast (saves {g['savings_pct']:.1f}%)")
    click.echo(f"wrote {r.out_dir} ({', '.join(r.report['outputs'].values())}) in "
               f"{r.report['seconds']:.1f} s")
