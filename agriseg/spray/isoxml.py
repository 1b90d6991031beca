"""ISO 11783-10 (ISO-XML) task data: a planned task with a type-2 grid of application rates.

What is written, and why (attribute letters as in ISO 11783-10 / the ISO-XML XSD):

* ``TASKDATA/TASKDATA.XML``: root ``ISO11783_TaskData`` with ``VersionMajor="4"``,
  ``VersionMinor="3"``, ``ManagementSoftwareManufacturer="agriseg"``,
  ``ManagementSoftwareVersion``, ``DataTransferOrigin="1"`` (from the farm management side).
* ``PDT`` (product): ``A`` id ``PDT1``, ``B`` designator, ``F="1"`` (a single product).
* ``TSK`` (task): ``A`` ``TSK1``, ``B`` designator, ``G="1"`` (planned), ``I`` position-lost
  zone = the spray zone (a lost GPS fix sprays broadcast rather than miss weeds), ``J``
  out-of-field zone = the zero zone.
* ``TZN`` (treatment zones), one per rate: code 0 "no spray" and code 1 the spray rate; each
  holds a ``PDV`` with ``A`` the DDI (hex, ``0001`` setpoint volume per area in
  0.01 mm³/m², so 1 l/ha = 10,000; or ``0006`` setpoint mass per area in mg/m², 1 kg/ha = 100),
  ``B`` the value in those units and ``C`` the product.
* ``GRD`` (grid, type 2): ``A`` minimum north position and ``B`` minimum east position (the
  south-west corner, WGS84 degrees), ``C``/``D`` cell north/east size in degrees, ``E`` the
  number of columns, ``F`` the number of rows, ``G`` ``GRD00000`` (the binary file's name
  without ``.BIN``), ``H`` its length in bytes, ``I="2"``, ``J="1"`` (the zone whose ``PDV``
  list the cell values follow).
* ``TASKDATA/GRD00000.BIN``: one little-endian int32 per cell, the rate in the DDI's units,
  the south-west cell first, eastwards along a row, then the next row north.

ISO-XML grids are north-aligned and in degrees: the heading does not apply, and the cell
sizes are the metric ones converted at the field's centre latitude.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from agriseg import __version__
from agriseg.errors import ConfigError
from agriseg.spray.grid import ISO_POSITION_DECIMALS, ISO_SIZE_DECIMALS
from agriseg.spray.rates import CellPlan

# units -> (DDI, DDI units per unit of rate, product quantity unit)
UNITS = {"l/ha": (1, 10_000, "l"), "kg/ha": (6, 100, "kg")}
GRID_NAME = "GRD00000"
INT32_MAX = 2**31 - 1


def ddi_for(units: str) -> tuple[int, int, str]:
    """The DDI, its scale and the product unit for rate ``units``, or a clear error."""
    try:
        return UNITS[units]
    except KeyError:
        raise ConfigError(f"rate units {units!r} are not supported; use one of "
                          f"{', '.join(UNITS)}") from None


def rate_value(rate: float, units: str) -> int:
    """A rate in the DDI's integer units (l/ha x 10,000 or kg/ha x 100)."""
    value = round(rate * ddi_for(units)[1])
    if not 0 <= value <= INT32_MAX:
        raise ConfigError(f"rate {rate} {units} does not fit ISO-XML's int32 value range "
                          f"(at most {INT32_MAX / ddi_for(units)[1]:g} {units})")
    return value


def write_taskdata(plan: CellPlan, folder: Path, *, rate: float, units: str,
                   name: str = "agriseg spot spray", product: str = "herbicide") -> Path:
    """Write ``folder/TASKDATA/TASKDATA.XML`` and ``GRD00000.BIN``; return the XML's path."""
    grid = plan.grid
    ddi = ddi_for(units)[0]
    values = np.where(plan.sprayed, rate_value(rate, units), 0).astype("<i4")
    data = values.reshape(grid.shape).tobytes(order="C")  # row 0 = south, col 0 = west
    out = folder / "TASKDATA"
    out.mkdir()
    (out / f"{GRID_NAME}.BIN").write_bytes(data)

    root = ET.Element("ISO11783_TaskData", {
        "VersionMajor": "4", "VersionMinor": "3",
        "ManagementSoftwareManufacturer": "agriseg",
        "ManagementSoftwareVersion": __version__[:32], "DataTransferOrigin": "1"})
    ET.SubElement(root, "PDT", {"A": "PDT1", "B": product[:32], "F": "1"})
    task = ET.SubElement(root, "TSK", {"A": "TSK1", "B": name[:32], "G": "1", "I": "1",
                                       "J": "0"})
    for code, label, value in ((0, "no spray", 0), (1, f"spray {rate:g} {units}",
                                                    rate_value(rate, units))):
        zone = ET.SubElement(task, "TZN", {"A": str(code), "B": label[:32]})
        ET.SubElement(zone, "PDV", {"A": f"{ddi:04X}", "B": str(value), "C": "PDT1"})
    ET.SubElement(task, "GRD", {
        "A": f"{grid.y0:.{ISO_POSITION_DECIMALS}f}", "B": f"{grid.x0:.{ISO_POSITION_DECIMALS}f}",
        "C": f"{grid.length:.{ISO_SIZE_DECIMALS}f}", "D": f"{grid.width:.{ISO_SIZE_DECIMALS}f}",
        "E": str(grid.n_cols), "F": str(grid.n_rows), "G": GRID_NAME, "H": str(len(data)),
        "I": "2", "J": "1"})
    ET.indent(root)
    path = out / "TASKDATA.XML"
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return path
