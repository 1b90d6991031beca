"""The spray grid: rectangular cells of one spray section's width, laid out along the field.

A sprayer switches whole sections on and off, so a prescription is a grid whose cells are one
section wide (across the direction of travel) and one control length long (along it). The grid
is a plain affine frame in some CRS: an origin, the direction of travel (``heading_deg``,
clockwise from grid north) and two cell sizes in that CRS's units. Cells are numbered from the
origin corner: ``col`` across travel (to the right of the direction of travel, i.e. eastwards at
heading 0), ``row`` along travel (northwards at heading 0), flat index ``row * n_cols + col`` —
which at heading 0 is exactly ISO 11783-10's grid order (south-west corner first, eastwards,
then northwards).

Two grids are built from this one class: the metric field grid (in the mask's projected CRS, or
the UTM zone of the field centre for a geographic mask, rotated by the heading) for Shapefile
and GeoPackage, and the north-aligned longitude/latitude grid ISO-XML requires (see
:func:`lonlat_grid`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import CRS

from agriseg.raster.units import metres_per_unit

# ISO-XML grid attributes are written with these many decimals; the grid uses the rounded values
# so that what the terminal reads is exactly the grid that was computed.
ISO_POSITION_DECIMALS = 9
ISO_SIZE_DECIMALS = 12


@dataclass(frozen=True)
class CellGrid:
    """``n_cols`` x ``n_rows`` cells of ``width`` x ``length`` CRS units from ``(x0, y0)``.

    ``width_m``/``length_m`` are the cell sizes in metres (exact for a projected CRS, at the
    field centre for longitude/latitude); buffers and headlands measured in cells use them.
    """

    crs: CRS
    x0: float
    y0: float
    width: float
    length: float
    heading_deg: float
    n_cols: int
    n_rows: int
    width_m: float
    length_m: float

    @property
    def size(self) -> int:
        return self.n_cols * self.n_rows

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols): flat cell arrays reshape to this, row 0 at the origin."""
        return self.n_rows, self.n_cols

    def _axes(self) -> tuple[np.ndarray, np.ndarray]:
        h = math.radians(self.heading_deg)
        across = np.array([math.cos(h), -math.sin(h)])  # right of travel: east at heading 0
        along = np.array([math.sin(h), math.cos(h)])  # travel: north at heading 0
        return across, along

    def cell_coords(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (col, row) of points ``x, y`` in the grid's CRS."""
        across, along = self._axes()
        dx, dy = np.asarray(x, float) - self.x0, np.asarray(y, float) - self.y0
        return ((dx * across[0] + dy * across[1]) / self.width,
                (dx * along[0] + dy * along[1]) / self.length)

    def flat_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Flat cell index of each point, -1 for points outside the grid."""
        col, row = self.cell_coords(x, y)
        col, row = np.floor(col), np.floor(row)
        inside = (col >= 0) & (col < self.n_cols) & (row >= 0) & (row < self.n_rows)
        flat = np.full(col.shape, -1, dtype=np.int64)
        flat[inside] = row[inside].astype(np.int64) * self.n_cols + col[inside].astype(np.int64)
        return flat

    def polygons(self) -> np.ndarray:
        """Every cell as a shapely Polygon, in flat order, in the grid's CRS."""
        across, along = self._axes()
        rows, cols = np.divmod(np.arange(self.size), self.n_cols)
        corners = []
        for dc, dr in ((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)):
            a, b = (cols + dc) * self.width, (rows + dr) * self.length
            corners.append(np.column_stack([self.x0 + a * across[0] + b * along[0],
                                            self.y0 + a * across[1] + b * along[1]]))
        return shapely.polygons(np.stack(corners, axis=1))


def covering_grid(crs: CRS, points: np.ndarray, width: float, length: float,
                  heading_deg: float, width_m: float, length_m: float) -> CellGrid:
    """The smallest grid of the given cell size and heading that covers ``points`` (N, 2).

    The origin is the corner where the field's extent starts across and along travel, so a
    field edge parallel to the heading coincides with a cell edge.
    """
    probe = CellGrid(crs, 0.0, 0.0, 1.0, 1.0, heading_deg, 1, 1, 1.0, 1.0)
    a, b = probe.cell_coords(points[:, 0], points[:, 1])
    across, along = probe._axes()
    # the origin steps back by 1e-7 of a cell, so rounding in the rotation never puts the
    # field's first point at index -1
    a0, b0 = a.min() - 1e-7 * width, b.min() - 1e-7 * length
    x0 = a0 * across[0] + b0 * along[0]
    y0 = a0 * across[1] + b0 * along[1]
    n_cols = max(1, math.ceil((a.max() - a.min()) / width - 1e-6))
    n_rows = max(1, math.ceil((b.max() - b.min()) / length - 1e-6))
    return CellGrid(crs, float(x0), float(y0), width, length, heading_deg, n_cols, n_rows,
                    width_m, length_m)


def metric_crs(crs: CRS, lon_lat_centre: tuple[float, float]) -> CRS:
    """The CRS the field grid is built in: ``crs`` itself when projected, else the UTM zone
    of the field centre (cells must be metres, not degrees)."""
    if not crs.is_geographic:
        return crs
    lon, lat = lon_lat_centre
    zone = int((lon + 180) // 6) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def field_grid(crs: CRS, points: np.ndarray, width_m: float, length_m: float,
               heading_deg: float) -> CellGrid:
    """The rotated metric grid over ``points`` given in the projected ``crs``."""
    per_unit = metres_per_unit(crs)[0]
    return covering_grid(crs, points, width_m / per_unit, length_m / per_unit, heading_deg,
                         width_m, length_m)


def lonlat_grid(lon_lat: np.ndarray, width_m: float, length_m: float) -> CellGrid:
    """The north-aligned EPSG:4326 grid ISO-XML needs, over points given as (lon, lat).

    ISO 11783-10 grids are in degrees, so the cell sizes are the metric ones converted at the
    field's centre latitude (:func:`agriseg.raster.units.metres_per_unit`): over a field the
    east size varies by well under 1% from the centre to the edges. The origin is rounded down
    and the sizes rounded to the decimals written to TASKDATA.XML.
    """
    lat_c = float((lon_lat[:, 1].min() + lon_lat[:, 1].max()) / 2)
    m_lon, m_lat = metres_per_unit("EPSG:4326", lat_c)
    width = round(width_m / m_lon, ISO_SIZE_DECIMALS)
    length = round(length_m / m_lat, ISO_SIZE_DECIMALS)
    scale = 10 ** ISO_POSITION_DECIMALS
    x0 = math.floor(float(lon_lat[:, 0].min()) * scale) / scale
    y0 = math.floor(float(lon_lat[:, 1].min()) * scale) / scale
    n_cols = max(1, math.ceil((lon_lat[:, 0].max() - x0) / width - 1e-9))
    n_rows = max(1, math.ceil((lon_lat[:, 1].max() - y0) / length - 1e-9))
    return CellGrid(CRS.from_epsg(4326), x0, y0, width, length, 0.0, n_cols, n_rows,
                    width_m, length_m)
