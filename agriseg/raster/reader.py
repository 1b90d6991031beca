"""Streaming reads: each source row is read once, in full-width strips, and cut into patches.

Overlapping patches share pixels, so reading one window per patch would decode most blocks
several times. Instead a rolling buffer (:func:`rolling_strips`, shared with the label reader)
holds the rows of the current patch row; moving down by one stride reads only the rows not yet
seen and drops the ones above. Memory is
``bands x patch height x raster width``, independent of the raster's height.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from agriseg.errors import RasterError, first_line
from agriseg.raster.grid import PatchGrid
from agriseg.raster.io import MaskSource


@dataclass(frozen=True)
class PatchRow:
    """The pixels under patch row ``index``: rows ``y0 .. y0 + data.shape[1]``, full width."""

    index: int
    y0: int
    data: np.ndarray  # (bands, rows, width), the raster's dtype
    valid: np.ndarray  # (rows, width) bool


class StripReader:
    """Iterate over a grid's patch rows, reading every source row exactly once."""

    def __init__(self, src: rasterio.DatasetReader, indexes: Sequence[int], grid: PatchGrid,
                 mask: MaskSource | None = None) -> None:
        self.src, self.indexes, self.grid = src, list(indexes), grid
        self.mask = mask or MaskSource.of(src, self.indexes)
        self.rows_read = 0  # exposed so tests can check that no row is read twice

    def _read(self, y: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        win = Window(0, y, self.grid.width, n)
        try:
            data = self.src.read(self.indexes, window=win)
            valid = self.mask.valid(self.src, data, self.indexes, win)
        except RasterioIOError as e:
            cause = e.__cause__ or e.__context__ or e  # GDAL's own message is on the cause
            msg = first_line(cause, "read failed")
            raise RasterError(f"{self.src.name}: corrupt or unreadable data in rows {y}-{y + n}: "
                              f"{msg}") from None
        self.rows_read += n
        return data, valid

    def __iter__(self) -> Iterator[PatchRow]:
        for i, y0, (data, valid) in rolling_strips(self.grid, self._read):
            yield PatchRow(index=i, y0=y0, data=data, valid=valid)


def rolling_strips(grid: PatchGrid, read: Callable[[int, int], Sequence[np.ndarray]]
                   ) -> Iterator[tuple[int, int, tuple[np.ndarray, ...]]]:
    """The rows under each patch row of ``grid``, reading every raster row exactly once.

    ``read(y, n)`` returns arrays of rows ``y .. y + n`` with the rows on their second-to-last
    axis (``(bands, n, width)`` image data, ``(n, width)`` masks or labels). Yields
    ``(patch row index, y0, arrays)`` with ``read_h`` rows each: the rows shared with the
    previous patch row are kept from the buffer, only the new ones are read.

    The arrays are views of one buffer per array, reused from step to step (no concatenation,
    no second strip in memory): whatever a consumer keeps past the next step, it copies.
    """
    bufs: list[np.ndarray] | None = None
    held = start = 0  # rows held in the buffers, and the raster row of the first
    for i, y0 in enumerate(grid.rows):
        end = y0 + grid.read_h
        keep = max(0, start + held - y0)
        if bufs is not None and keep:
            for b in bufs:  # the shared rows move to the top
                b[..., :keep, :] = b[..., held - keep:held, :]
        if y0 + keep < end:
            new = read(y0 + keep, end - y0 - keep)
            if bufs is None:
                bufs = [np.empty(n.shape[:-2] + (grid.read_h,) + n.shape[-1:], dtype=n.dtype)
                        for n in new]
            for b, n in zip(bufs, new, strict=True):
                b[..., keep:keep + n.shape[-2], :] = n
        held, start = end - y0, y0
        yield i, y0, tuple(b[..., :held, :] for b in bufs)

def cut_patch(row: PatchRow, x0: int, grid: PatchGrid) -> tuple[np.ndarray, np.ndarray]:
    """One patch of ``(bands, patch_h, patch_w)`` at column ``x0``, padded by reflection when
    the raster is smaller than a patch; returns ``(data, valid)``."""
    data = row.data[:, :, x0:x0 + grid.read_w]
    valid = row.valid[:, x0:x0 + grid.read_w]
    ph, pw = grid.patch_h - data.shape[1], grid.patch_w - data.shape[2]
    if ph or pw:
        mode = "symmetric"  # unlike "reflect", works for 1-pixel-wide rasters too
        data = np.pad(data, ((0, 0), (0, ph), (0, pw)), mode=mode)
        valid = np.pad(valid, ((0, ph), (0, pw)), mode=mode)
    return data, valid

