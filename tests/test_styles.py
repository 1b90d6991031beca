"""QML and GDAL category names: parsed back, every class with its value, name and colour."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from agriseg.constants import DEFAULT_COLORS
from agriseg.styles import (
    ClassStyle,
    category_names_pam,
    class_styles,
    confidence_qml,
    fallback_color,
    mask_qml,
    polygon_qml,
)

CLASSES = [ClassStyle(1, "crop", (34, 139, 34)), ClassStyle(2, 'weed <"é"> & co', (220, 20, 60))]


def _parse(qml: str) -> ET.Element:
    assert qml.startswith("<!DOCTYPE qgis")
    root = ET.fromstring(qml.split("\n", 1)[1])
    assert root.tag == "qgis" and root.get("styleCategories") == "Symbology"
    return root


def test_polygon_style_has_one_category_per_class_with_its_colour_and_name():
    root = _parse(polygon_qml(CLASSES))
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "class_id"
    cats = renderer.findall("categories/category")
    assert [(c.get("value"), c.get("label")) for c in cats] == [
        ("1", "crop"), ("2", 'weed <"é"> & co')]  # escaped in the file, whole when parsed
    symbols = {s.get("name"): s for s in renderer.findall("symbols/symbol")}
    for cat, cls in zip(cats, CLASSES, strict=True):
        symbol = symbols[cat.get("symbol")]
        assert symbol.get("type") == "fill"
        layer = symbol.find("layer")
        assert layer.get("class") == "SimpleFill"
        props = {o.get("name"): o.get("value") for o in layer.findall("Option/Option")}
        assert props["color"] == ",".join(map(str, (*cls.color, 255)))
        assert props["style"] == "solid" and props["outline_style"] == "solid"
        outline = [int(v) for v in props["outline_color"].split(",")]
        assert outline == [int(v * 0.6) for v in cls.color] + [255]  # darker than the fill
        assert float(props["outline_width"]) > 0


def test_mask_style_is_paletted_with_only_the_classes():
    root = _parse(mask_qml(CLASSES))
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = renderer.findall("colorPalette/paletteEntry")
    assert [(e.get("value"), e.get("color"), e.get("alpha"), e.get("label")) for e in entries] \
        == [("1", "#228b22", "255", "crop"), ("2", "#dc143c", "255", 'weed <"é"> & co')]
    assert root.find("pipe/rasterresampler").get("zoomedInResampler") is None  # nearest


def test_confidence_style_ramps_over_0_to_100_percent():
    renderer = _parse(confidence_qml()).find("pipe/rasterrenderer")
    assert renderer.get("type") == "singlebandpseudocolor"
    assert (renderer.get("classificationMin"), renderer.get("classificationMax")) == ("0", "100")
    shader = renderer.find("rastershader/colorrampshader")
    assert shader.get("colorRampType") == "INTERPOLATED"
    assert [i.get("value") for i in shader.findall("item")] == ["0", "50", "100"]


def test_category_names_are_indexed_by_value():
    doc = ET.fromstring(category_names_pam(CLASSES))
    band = doc.find("PAMRasterBand")
    assert doc.tag == "PAMDataset" and band.get("band") == "1"
    assert [c.text or "" for c in band.findall("CategoryNames/Category")] == [
        "", "crop", 'weed <"é"> & co']  # value 0 is no class here: an empty name


def test_class_styles_pair_names_and_colours_by_id_and_fill_gaps():
    styles = class_styles(["soil", "crop", "weed"], [(1, 2, 3), (4, 5, 6)])
    assert styles == [ClassStyle(0, "soil", (1, 2, 3)), ClassStyle(1, "crop", (4, 5, 6)),
                      ClassStyle(2, "weed", fallback_color(2))]
    styles = class_styles({7: "x", 255: "nodata", 3: "y"}, {7: (9, 9, 9, 0)})
    assert styles == [ClassStyle(3, "y", fallback_color(3)), ClassStyle(7, "x", (9, 9, 9))]
    assert fallback_color(1) == DEFAULT_COLORS[1]
    assert fallback_color(1 + len(DEFAULT_COLORS)) == DEFAULT_COLORS[1]  # same on every run
