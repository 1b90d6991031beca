"""From weed cover to a rate per cell: field cells, threshold, buffer and headland.

The rules, and why:

* **Field cells.** With a boundary, a cell belongs to the field when it overlaps the boundary
  with positive area, and its polygon and area are clipped to the boundary (so the reported
  areas are the field's, and a terminal with boundary shut-off sprays exactly those). Without a
  boundary, the field is every cell holding at least one valid (non-nodata) mask pixel, whole
  (for polygon input: every cell of the grid over the polygons' extent). What the mask does
  not cover (no data, off the raster) counts as weed-free: a share of 0.
* **Threshold.** A field cell is *triggered* when it holds weed and its weed share (weed pixels
  over valid pixels, or weed area over cell area) is at or above ``threshold``. With threshold 0
  every cell with any weed pixel is triggered, so every weed pixel lies in a sprayed cell; with a
  threshold above 0 only weed in cells at or above it is sure to be covered (that is the point
  of a threshold: ignore a few scattered plants).
* **Buffer.** A field cell is sprayed when its rectangle comes *closer* than ``buffer_m`` to a
  triggered cell's rectangle (exact distance between the two rectangles, in metres). The union
  of sprayed cells therefore contains every point within ``buffer_m`` of a triggered cell, and
  buffer 0 sprays the triggered cells only. This is a dilation over cell indices with a
  structuring element built from those distances, so it costs the same for any field.
* **Headland.** Field cells that come closer than ``headland_m`` to the field's edge get the
  broadcast rate too (the turning strip is sprayed in full: weeds there are not mapped well and
  the sprayer is turning). The edge is the boundary when given, else the edge of the field
  cells (measured the same way as the buffer).
* Every other field cell gets an explicit rate 0: the whole field is covered, no nulls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer
from scipy import ndimage

from agriseg.spray.cover import to_crs
from agriseg.spray.grid import CellGrid
from agriseg.vector.attributes import metric_area_perimeter


@dataclass
class CellPlan:
    """One grid's prescription; all arrays are flat over the grid's cells."""

    grid: CellGrid
    field: np.ndarray  # bool: the cell is part of the field
    cells: np.ndarray  # polygons in the grid's CRS (clipped to the boundary)
    area_m2: np.ndarray  # field area of each cell, 0 outside the field
    weed_share: np.ndarray  # 0..1, 0 where the cell has no data
    triggered: np.ndarray
    headland: np.ndarray
    sprayed: np.ndarray
    rate: np.ndarray  # the rate per cell, 0 where not sprayed


def field_cells(grid: CellGrid, boundary: shapely.Geometry | None,
                default_field: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(field, cells, area_m2)``: cells clipped to ``boundary`` (in the grid's CRS), or
    ``default_field`` with whole cells when there is no boundary."""
    cells = grid.polygons()
    if boundary is None:
        field = default_field.copy()
    else:
        shapely.prepare(boundary)  # tested against every cell: prepared, it is the 1st argument
        field = shapely.intersects(boundary, cells)
        edge = field & ~shapely.contains_properly(boundary, cells)  # only these need clipping
        cells[edge] = shapely.intersection(cells[edge], boundary)
    area = np.zeros(grid.size)
    area[field] = metric_area_perimeter(cells[field], grid.crs)[0]
    field &= area > 0
    area[~field] = 0.0
    return field, cells, area


def reach(grid: CellGrid, distance_m: float) -> np.ndarray:
    """Structuring element (rows, cols): offsets whose cell comes closer than ``distance_m``
    to the centre cell, rectangle to rectangle; the centre itself always."""
    kc = math.ceil(distance_m / grid.width_m) + 1
    kr = math.ceil(distance_m / grid.length_m) + 1
    dr, dc = np.mgrid[-kr:kr + 1, -kc:kc + 1]
    gap = np.hypot(np.maximum(np.abs(dc) - 1, 0) * grid.width_m,
                   np.maximum(np.abs(dr) - 1, 0) * grid.length_m)
    element = gap < distance_m
    element[kr, kc] = True
    return element


def grow(grid: CellGrid, cells: np.ndarray, distance_m: float) -> np.ndarray:
    """Flat cells within ``distance_m`` of any of ``cells`` (see :func:`reach`)."""
    if distance_m <= 0 or not cells.any():
        return cells.copy()
    grown = ndimage.binary_dilation(cells.reshape(grid.shape), structure=reach(grid, distance_m))
    return grown.ravel()


def headland_cells(grid: CellGrid, field: np.ndarray, cells: np.ndarray, headland_m: float,
                   boundary_metric: shapely.Geometry | None,
                   to_grid: Transformer | None) -> np.ndarray:
    """Field cells closer than ``headland_m`` to the field's edge.

    With a boundary (``boundary_metric``, in metres) the strip is the boundary minus its
    inward buffer, brought into the grid's CRS by ``to_grid``; without one, a cell is headland
    when it comes closer than ``headland_m`` to a cell outside the field (or the grid's edge).
    """
    if headland_m <= 0:
        return np.zeros(grid.size, bool)
    if boundary_metric is not None:
        strip = shapely.difference(boundary_metric, shapely.buffer(boundary_metric, -headland_m))
        if to_grid is not None:
            strip = to_crs(strip, to_grid, segment=headland_m / 4)
        hit = np.zeros(grid.size, bool)
        idx = np.flatnonzero(field)
        shapely.prepare(strip)
        hit[idx] = shapely.intersects(strip, cells[idx]) & ~shapely.touches(strip, cells[idx])
        return hit
    outside = np.pad(~field.reshape(grid.shape), 1, constant_values=True)
    near = ndimage.binary_dilation(outside, structure=reach(grid, headland_m))[1:-1, 1:-1]
    return field & near.ravel()


def plan(grid: CellGrid, field: np.ndarray, cells: np.ndarray, area_m2: np.ndarray,
         weed: np.ndarray, share: np.ndarray, headland: np.ndarray, *, threshold: float,
         buffer_m: float, rate: float) -> CellPlan:
    """Threshold, buffer and headland into rates; ``weed`` > 0 marks cells holding weed."""
    triggered = field & (weed > 0) & (share >= threshold)
    sprayed = field & (grow(grid, triggered, buffer_m) | headland)
    rates = np.where(sprayed, float(rate), 0.0)
    return CellPlan(grid, field, cells, area_m2, np.where(field, share, 0.0), triggered,
                    headland & field, sprayed, rates)
