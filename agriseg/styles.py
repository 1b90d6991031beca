"""QGIS styles (QML) and GDAL category names, so class layers open styled and labelled.

A GIS user should see "crop" in green and "weed" in red the moment a mask or a polygon layer is
opened, without styling it by hand. QGIS loads a layer's default style from a ``.qml`` file
named like the data file (``mask.tif`` -> ``mask.qml``) or, for a GeoPackage, from the
``layer_styles`` table inside it; GDAL (and QGIS's legend of an unstyled raster) names raster
values after the band's category names, which a GeoTIFF keeps in its ``.aux.xml``.

Everything here is text built from ``(class id, name, colour)`` triples, with no file I/O and
no agriseg import, so both the raster writers and the vector exporters can use it.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agriseg.constants import DEFAULT_COLORS, NODATA

QGIS_VERSION = "3.22.0"  # the oldest QGIS these files were checked with (Debian 12's 3.22)
CLASS_ATTRIBUTE = "class_id"
_DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
# confidence in percent: low red, middle yellow, high green
_CONFIDENCE_RAMP = ((0, (215, 25, 28)), (50, (255, 255, 191)), (100, (26, 150, 65)))


@dataclass(frozen=True)
class ClassStyle:
    """One class as a map shows it: its id (raster value / ``class_id``), name and colour."""

    value: int
    name: str
    color: tuple[int, int, int]


def fallback_color(class_id: int) -> tuple[int, int, int]:
    """A fixed colour per class id for masks that carry none, the same on every run."""
    return DEFAULT_COLORS[class_id % len(DEFAULT_COLORS)]


def style_path(path: str | os.PathLike) -> Path:
    """The ``.qml`` QGIS loads with a data file: the same name with the suffix ``.qml``."""
    return Path(path).with_suffix(".qml")


def class_styles(names: Mapping[int, str] | Sequence[str],
                 colors: Mapping[int, Sequence[int]] | Sequence[Sequence[int]] | None = None
                 ) -> list[ClassStyle]:
    """Pair class names (a list indexed by id, or id -> name) with their colours, by id.

    A class without a colour gets :func:`fallback_color`; no-data (255) is never a class.
    """
    by_id = dict(enumerate(names)) if not isinstance(names, Mapping) else dict(names)
    cols = dict(enumerate(colors)) if colors is not None and not isinstance(colors, Mapping) \
        else dict(colors or {})
    out = []
    for value in sorted(by_id):
        if value == NODATA:
            continue
        rgb = cols.get(value)
        color = tuple(int(c) for c in rgb[:3]) if rgb is not None else fallback_color(value)
        out.append(ClassStyle(int(value), str(by_id[value]), color))  # type: ignore[arg-type]
    return out


def polygon_qml(classes: Sequence[ClassStyle], attribute: str = CLASS_ATTRIBUTE) -> str:
    """A categorized fill style on ``attribute``: one category per class, labelled by name.

    The outline is a darker shade of the fill, so touching regions of one class stay apart.
    """
    root = _qgis_root()
    renderer = ET.SubElement(root, "renderer-v2", type="categorizedSymbol", attr=attribute,
                             symbollevels="0", enableorderby="0", forceraster="0")
    cats = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for i, c in enumerate(classes):
        ET.SubElement(cats, "category", render="true", value=str(c.value), symbol=str(i),
                      label=c.name)
        _fill_symbol(symbols, str(i), c.color)
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")
    return _serialize(root)


def _fill_symbol(parent: ET.Element, name: str, rgb: tuple[int, int, int]) -> None:
    symbol = ET.SubElement(parent, "symbol", type="fill", name=name, alpha="1",
                           clip_to_extent="1", force_rhr="0")
    layer = ET.SubElement(symbol, "layer", {"class": "SimpleFill", "enabled": "1",
                                            "locked": "0", "pass": "0"})
    outline = tuple(int(v * 0.6) for v in rgb)
    props = {"color": _rgba(rgb), "style": "solid", "outline_color": _rgba(outline),
             "outline_style": "solid", "outline_width": "0.26", "outline_width_unit": "MM",
             "joinstyle": "bevel", "border_width_map_unit_scale": "3x:0,0,0,0,0,0",
             "offset": "0,0", "offset_unit": "MM"}
    options = ET.SubElement(layer, "Option", type="Map")
    for key, value in props.items():
        ET.SubElement(options, "Option", type="QString", name=key, value=value)


def mask_qml(classes: Sequence[ClassStyle], band: int = 1) -> str:
    """A paletted raster style listing only the classes, with their names; no-data, and
    every value that is no class, is not drawn."""
    root = _qgis_root()
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(pipe, "rasterrenderer", type="paletted", band=str(band),
                             opacity="1", alphaBand="-1", nodataColor="")
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    for c in classes:
        ET.SubElement(palette, "paletteEntry", value=str(c.value), color=_hex(c.color),
                      alpha="255", label=c.name)
    _raster_tail(pipe)
    return _serialize(root)


def confidence_qml(band: int = 1) -> str:
    """A red-yellow-green ramp over 0-100 % for the confidence raster (255 is no data)."""
    root = _qgis_root()
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(pipe, "rasterrenderer", type="singlebandpseudocolor",
                             band=str(band), opacity="1", alphaBand="-1", nodataColor="",
                             classificationMin="0", classificationMax="100")
    ET.SubElement(renderer, "rasterTransparency")
    shader = ET.SubElement(ET.SubElement(renderer, "rastershader"), "colorrampshader",
                           colorRampType="INTERPOLATED", classificationMode="1", clip="1",
                           minimumValue="0", maximumValue="100")
    for value, rgb in _CONFIDENCE_RAMP:
        ET.SubElement(shader, "item", value=str(value), color=_hex(rgb), alpha="255",
                      label=f"{value} %")
    _raster_tail(pipe)
    return _serialize(root)


def category_names_pam(classes: Sequence[ClassStyle], band: int = 1) -> str:
    """A GDAL PAM document (``<raster>.aux.xml``) naming band values after the classes.

    GDAL's category names are a list indexed by value, so ids without a class get an empty
    name; the list stops at the last class.
    """
    root = ET.Element("PAMDataset")
    pam_band = ET.SubElement(root, "PAMRasterBand", band=str(band))
    names = ET.SubElement(pam_band, "CategoryNames")
    by_value = {c.value: c.name for c in classes}
    for value in range(max(by_value, default=-1) + 1):
        ET.SubElement(names, "Category").text = by_value.get(value, "")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _qgis_root() -> ET.Element:
    return ET.Element("qgis", version=QGIS_VERSION, styleCategories="Symbology")


def _raster_tail(pipe: ET.Element) -> None:
    """The rest of a raster pipe, at QGIS's defaults; nearest-neighbour resampling (no
    ``zoomedInResampler``) never blends class colours into colours of no class."""
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", grayscaleMode="0",
                  colorizeOn="0", colorizeRed="255", colorizeGreen="128", colorizeBlue="128",
                  colorizeStrength="100")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")


def _serialize(root: ET.Element) -> str:
    ET.indent(root)
    return _DOCTYPE + ET.tostring(root, encoding="unicode") + "\n"


def _rgba(rgb: Sequence[int]) -> str:
    return ",".join(str(int(v)) for v in (*rgb[:3], 255))


def _hex(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb[:3])
