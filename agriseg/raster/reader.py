"""Streaming reads: each source row is read once, in full-width strips, and cut into patches.

Overlapping patches share pixels, so reading one window per patch would decode most blocks
several times. Instead a rolling buffer holds the rows of the current patch row; moving down by
one stride reads only the rows not yet seen and drops the ones above. Memory is
``bands x patch height x raster width``, independent of the raster's height.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from agriseg.errors import RasterError
from agriseg.models.card import Normalization
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
            msg = str(cause).splitlines()[0] if str(cause) else "read failed"
            raise RasterError(f"{self.src.name}: corrupt or unreadable data in rows {y}-{y + n}: "
                              f"{msg}") from None
        self.rows_read += n
        return data, valid

    def __iter__(self) -> Iterator[PatchRow]:
        g = self.grid
        data = np.empty((len(self.indexes), 0, g.width), dtype=self.src.dtypes[0])
        valid = np.empty((0, g.width), dtype=bool)
        start = 0  # first raster row held in the buffer
        for i, y0 in enumerate(g.rows):
            end = y0 + g.read_h
            keep = max(0, start + data.shape[1] - y0)
            first_new = y0 + keep
            data, valid = data[:, data.shape[1] - keep:], valid[valid.shape[0] - keep:]
            if first_new < end:
                d, v = self._read(first_new, end - first_new)
                data = np.concatenate([data, d], axis=1)
                valid = np.concatenate([valid, v], axis=0)
            start = y0
            yield PatchRow(index=i, y0=y0, data=data, valid=valid)


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


def normalize(data: np.ndarray, valid: np.ndarray, norm: Normalization) -> np.ndarray:
    """``(value - mean) / std`` as float32; no-data pixels become 0 (the band mean)."""
    mean = np.asarray(norm.mean, dtype=np.float32).reshape(-1, *([1] * (data.ndim - 1)))
    inv_std = (1.0 / np.asarray(norm.std, dtype=np.float32)).reshape(mean.shape)
    out = data.astype(np.float32)
    out -= mean
    out *= inv_std
    if data.dtype.kind == "f":  # NaN/inf in one band of an otherwise valid pixel
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    if not valid.all():
        out[..., ~valid] = 0.0
    return out
