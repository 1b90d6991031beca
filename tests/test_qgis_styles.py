"""Real QGIS opens every output styled: run only where the system Python has PyQGIS.

The test environment's Python is not QGIS's, so the check runs in a subprocess of the system
Python (Debian: ``apt-get install python3-qgis qgis-providers``), headless.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from agriseg.infer.pipeline import predict_raster
from agriseg.vector.vectorize import vectorize_mask

QGIS_PYTHON = Path(os.environ.get("AGRISEG_QGIS_PYTHON", "/usr/bin/python3"))

CHECK = r"""
import json, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from qgis.core import (Qgis, QgsApplication, QgsProviderRegistry, QgsRasterLayer,
                       QgsRenderContext, QgsVectorLayer)
app = QgsApplication([], False)
app.initQgis()
out = {"version": Qgis.QGIS_VERSION}
for path in sys.argv[1:]:
    if path.endswith(".tif"):
        layer = QgsRasterLayer(path, "r")
        r = layer.renderer()
        out[path] = {"valid": layer.isValid(), "type": r.type(),
                     "classes": [[int(c.value), c.color.name(), c.label] for c in r.classes()]
                     if r.type() == "paletted" else []}
        continue
    uri = path
    sublayers = []
    if path.endswith(".gpkg"):
        md = QgsProviderRegistry.instance().providerMetadata("ogr")
        sublayers = [s.name() for s in md.querySublayers(path)]
        uri = f"{path}|layername={sublayers[0]}"
    layer = QgsVectorLayer(uri, "v", "ogr")
    r = layer.renderer()
    res = {"valid": layer.isValid(), "type": r.type(), "sublayers": sublayers,
           "features": layer.featureCount()}
    if r.type() == "categorizedSymbol":
        res["attr"] = r.classAttribute()
        res["categories"] = [[c.value(), c.label(), c.symbol().color().name()]
                             for c in r.categories()]
        ctx = QgsRenderContext()
        r.startRender(ctx, layer.fields())
        res["drawn"] = sorted({(int(f["class_id"]), r.symbolForFeature(f, ctx).color().name())
                               for f in layer.getFeatures()})
        r.stopRender(ctx)
    out[path] = res
print(json.dumps(out), flush=True)
os._exit(0)  # exitQgis() with layers still referenced from Python crashes (PyQGIS 3.22)
"""


def _has_qgis() -> bool:
    if not QGIS_PYTHON.exists():
        return False
    probe = subprocess.run([str(QGIS_PYTHON), "-c", "import qgis.core"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _has_qgis(), reason=f"no PyQGIS for {QGIS_PYTHON}")


def test_qgis_opens_mask_and_every_polygon_format_styled(make_raster, make_checkpoint,
                                                        tmp_path):
    src = make_raster(width=160, height=120)
    out = tmp_path / "out"
    out.mkdir()
    mask = out / "mask.tif"
    predict_raster(src, mask, model=make_checkpoint(), patch_px=64,
                   confidence=out / "confidence.tif")
    polygons = []
    for name in ("p.gpkg", "s.shp", "f.fgb", "j.geojson"):
        vectorize_mask(mask, out / name, source="north field.tif")
        polygons.append(out / name)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}  # QGIS's Python, not the venv's
    r = subprocess.run([str(QGIS_PYTHON), "-c", CHECK, str(mask), str(out / "confidence.tif"),
                        *map(str, polygons)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen[str(mask)] == {"valid": True, "type": "paletted", "classes": [
        [0, "#8b5a2b", "soil"], [1, "#228b22", "crop"], [2, "#dc143c", "weed"]]}
    assert seen[str(out / "confidence.tif")]["type"] == "singlebandpseudocolor"
    colors = {"1": "#228b22", "2": "#dc143c"}
    for path in polygons:
        got = seen[str(path)]
        assert got["valid"] and got["features"] > 0, path
        assert got["type"] == "categorizedSymbol" and got["attr"] == "class_id", path
        assert got["categories"] == [["1", "crop", colors["1"]], ["2", "weed", colors["2"]]]
        assert {tuple(d) for d in got["drawn"]} == {(1, colors["1"]), (2, colors["2"])}
    # QGIS lists the polygon layer only: layer_styles is its own table, not a layer to add
    assert seen[str(out / "p.gpkg")]["sublayers"] == ["north_field_class_polygons"]
