"""ISO-XML task data read back by a strict reader written from ISO 11783-10 (every element and
attribute checked), and by the ``isoxml`` package when it is installed."""

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
from conftest import weed_field
from pyproj import Transformer

from agriseg import __version__
from agriseg.spray import prescribe

ID = re.compile(r"^(PDT|TSK)[0-9]+$")


def read_taskdata(folder):
    """Parse TASKDATA.XML strictly; return (grid attributes, zone values, decoded grid)."""
    root = ET.parse(folder / "TASKDATA" / "TASKDATA.XML").getroot()
    assert root.tag == "ISO11783_TaskData"
    assert root.attrib == {"VersionMajor": "4", "VersionMinor": "3",
                           "ManagementSoftwareManufacturer": "agriseg",
                           "ManagementSoftwareVersion": __version__,
                           "DataTransferOrigin": "1"}
    assert [c.tag for c in root] == ["PDT", "TSK"]
    pdt, tsk = root
    assert set(pdt.attrib) == {"A", "B", "F"} and ID.match(pdt.get("A"))
    assert 0 < len(pdt.get("B")) <= 32 and pdt.get("F") == "1"
    assert set(tsk.attrib) == {"A", "B", "G", "I", "J"} and ID.match(tsk.get("A"))
    assert tsk.get("G") == "1"  # planned
    assert [c.tag for c in tsk] == ["TZN", "TZN", "GRD"]
    zones = {}
    for tzn in tsk.findall("TZN"):
        assert set(tzn.attrib) == {"A", "B"} and len(tzn.get("B")) <= 32
        (pdv,) = list(tzn)
        assert pdv.tag == "PDV" and set(pdv.attrib) == {"A", "B", "C"}
        assert re.fullmatch(r"[0-9A-F]{4}", pdv.get("A")) and pdv.get("C") == pdt.get("A")
        zones[int(tzn.get("A"))] = (int(pdv.get("A"), 16), int(pdv.get("B")))
    assert int(tsk.get("I")) in zones and zones[int(tsk.get("J"))][1] == 0  # out of field: 0
    grd = tsk.find("GRD").attrib
    assert set(grd) == set("ABCDEFGHIJ") and grd["I"] == "2" and grd["G"] == "GRD00000"
    assert int(grd["J"]) in zones
    g = {"lat0": float(grd["A"]), "lon0": float(grd["B"]), "dlat": float(grd["C"]),
         "dlon": float(grd["D"]), "cols": int(grd["E"]), "rows": int(grd["F"])}
    assert -90 <= g["lat0"] <= 90 and -180 <= g["lon0"] <= 180
    assert 0 < g["dlat"] <= 1 and 0 < g["dlon"] <= 1
    data = (folder / "TASKDATA" / "GRD00000.BIN").read_bytes()
    assert int(grd["H"]) == len(data) == 4 * g["cols"] * g["rows"]
    values = np.frombuffer(data, dtype="<i4").reshape(g["rows"], g["cols"])
    return g, zones, values


@pytest.mark.parametrize("units,ddi,scale", [("l/ha", 1, 10_000), ("kg/ha", 6, 100)])
@pytest.mark.parametrize("geographic", [False, True])
def test_isoxml_grid_decodes_back_to_the_cells(tmp_path, units, ddi, scale, geographic):
    mask = weed_field(tmp_path / "mask.tif", geographic=geographic)
    r = prescribe(mask, tmp_path / "out", threshold=0.0, buffer_m=0.0, rate=87.5,
                  units=units, formats=("isoxml",))
    g, zones, values = read_taskdata(tmp_path / "out")
    assert zones == {0: (ddi, 0), 1: (ddi, round(87.5 * scale))}
    plan = r.plans["isoxml"]
    assert values.shape == plan.grid.shape
    assert np.array_equal(values.ravel(), np.where(plan.sprayed, round(87.5 * scale), 0))
    # every weed pixel, located by the file's own numbers alone, falls in a sprayed cell
    with rasterio.open(mask) as src:
        rows, cols = np.nonzero(src.read(1) == 2)
        x, y = rasterio.transform.xy(src.transform, rows, cols, offset="center")
        lon, lat = Transformer.from_crs(src.crs, 4326, always_xy=True).transform(
            np.asarray(x), np.asarray(y))
    col = np.floor((lon - g["lon0"]) / g["dlon"]).astype(int)
    row = np.floor((lat - g["lat0"]) / g["dlat"]).astype(int)  # row 0 is the southern one
    assert (values[row, col] == round(87.5 * scale)).all()
    sprayed = np.zeros(values.shape, bool)
    sprayed[row, col] = True
    assert np.array_equal(values > 0, sprayed)  # and nothing else (buffer 0)
    # cells are about 1 m on the ground
    assert g["dlon"] * 111_320 * math.cos(math.radians(g["lat0"])) == pytest.approx(1, rel=0.01)
    assert g["dlat"] * 110_574 == pytest.approx(1, rel=0.01)


def test_isoxml_reads_back_with_the_isoxml_package(tmp_path):
    isoxml_io = pytest.importorskip("isoxml.util.isoxml_io")
    from isoxml.converter.np_grid import to_numpy_array

    mask = weed_field(tmp_path / "mask.tif")
    r = prescribe(mask, tmp_path / "out", formats=("isoxml",), rate=150)
    task_data, refs = isoxml_io.isoxml_from_path(tmp_path / "out" / "TASKDATA")
    (task,) = task_data.tasks
    (grid,) = task.grids
    decoded = to_numpy_array(refs[grid.filename], grid)
    assert np.array_equal(decoded.ravel(), np.where(r.plans["isoxml"].sprayed, 1_500_000, 0))
    values = {z.code: z.process_data_variables[0].process_data_value
              for z in task.treatment_zones}
    assert values == {0: 0, 1: 1_500_000}
