"""Row-strip accumulator: blends overlapping patch logits and releases finished rows.

Patches arrive in row-major order. The accumulator holds one patch height of full-width rows;
once the next patch row starts, every row above it can receive no further contribution, so it is
finished (weighted mean, argmax, confidence) and handed to the writer. Memory is
``classes x patch height x raster width`` floats, whatever the raster's height.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from agriseg.constants import NODATA
from agriseg.infer.blending import BlendMode, axis_weights
from agriseg.raster.grid import PatchGrid

FINISH_ROWS = 64  # rows finished at a time


@dataclass(frozen=True)
class FinishedRows:
    """Rows ``y0 .. y0 + len`` of the output: class ids (uint8, 255 = no-data) and optionally
    confidence (uint8 percent 0-100, 255 = no-data)."""

    y0: int
    classes: np.ndarray
    confidence: np.ndarray | None


class StripAccumulator:
    def __init__(self, grid: PatchGrid, num_classes: int, blend: BlendMode = "hann",
                 confidence: bool = False) -> None:
        if num_classes > 255:
            raise ValueError("at most 255 classes fit a uint8 mask with nodata 255")
        self.grid, self.num_classes, self.confidence = grid, num_classes, confidence
        self.wy = axis_weights(grid.rows, grid.patch_h, grid.height, blend)
        self.wx = axis_weights(grid.cols, grid.patch_w, grid.width, blend)
        h = grid.read_h
        self.acc = np.zeros((num_classes, h, grid.width), dtype=np.float32)
        # a patch's weight is wy[i] (rows) x wx[j] (columns) and every patch row has the same
        # columns, so the sum of weights at (y, x) is WY(y) * WX(x): two 1-D arrays instead
        # of a full-width buffer
        self.wsum_y = _axis_sum(self.wy, grid.rows, grid.read_h, grid.height)
        self.wsum_x = _axis_sum(self.wx, grid.cols, grid.read_w, grid.width)
        self.valid = np.ones((h, grid.width), dtype=bool)
        self.base = 0  # raster row of acc[:, 0]
        self.row = 0  # current patch-row index

    def start_row(self, i: int, valid: np.ndarray) -> Iterator[FinishedRows]:
        """Move on to patch row ``i``; yields the rows this finishes.

        ``valid`` is the input's valid-pixel mask under the patch row (no-data becomes 255).
        """
        if i < self.row:
            raise ValueError(f"patch rows must arrive in order: got {i} after {self.row}")
        yield from self.finish_through(self.grid.rows[i])
        self.row = i
        self.valid[:valid.shape[0]] = valid

    def add(self, i: int, j: int, logits: np.ndarray) -> None:
        """Blend patch ``(i, j)``'s ``(classes, patch_h, patch_w)`` logits in."""
        if i != self.row:
            raise ValueError(f"patch ({i}, {j}) arrived while row {self.row} is open")
        g = self.grid
        y, x = g.rows[i] - self.base, g.cols[j]
        h, w = g.read_h, g.read_w
        wgt = self.wy[i][:h, None] * self.wx[j][None, :w]
        self.acc[:, y:y + h, x:x + w] += logits[:, :h, :w] * wgt

    def finish_through(self, stop: int) -> Iterator[FinishedRows]:
        """Finish rows ``base .. stop`` and shift the buffers up."""
        n = stop - self.base
        if n <= 0:
            return
        for y in range(0, n, FINISH_ROWS):  # in slices: the temporaries stay small
            yield self._finish(y, min(n, y + FINISH_ROWS))
        rest = self.acc.shape[1] - n
        _shift_up(self.acc, n, rest)
        self.acc[:, rest:] = 0
        self.valid[:rest] = self.valid[n:]
        self.valid[rest:] = True
        self.base = stop

    def _finish(self, y0: int, y1: int) -> FinishedRows:
        acc, valid = self.acc[:, y0:y1], self.valid[y0:y1]
        wsum = self.wsum_y[self.base + y0:self.base + y1, None] * self.wsum_x[None, :]
        covered = valid & (wsum > 0)
        classes = np.argmax(acc, axis=0).astype(np.uint8)
        classes[~covered] = NODATA
        conf = None
        if self.confidence:  # in place: these rows of acc are dropped afterwards anyway
            mean = acc
            mean /= np.maximum(wsum, 1e-30)
            mean -= mean.max(axis=0, keepdims=True)
            np.exp(mean, out=mean)
            top = 1.0 / mean.sum(axis=0)  # softmax of the winning class (its exp is 1)
            conf = np.rint(top * 100).astype(np.uint8)
            conf[~covered] = NODATA
        return FinishedRows(self.base + y0, classes, conf)

    def close(self) -> Iterator[FinishedRows]:
        """Finish every remaining row."""
        yield from self.finish_through(self.grid.height)


def _axis_sum(weights: list[np.ndarray], positions, read: int, length: int) -> np.ndarray:
    """The summed weight of every pixel along one axis of the raster."""
    total = np.zeros(length, dtype=np.float32)
    for w, p in zip(weights, positions, strict=True):
        total[p:p + read] += w[:read]
    return total


def _shift_up(acc: np.ndarray, n: int, rest: int) -> None:
    """``acc[:, :rest] = acc[:, n:n + rest]`` without a temporary copy.

    numpy copies overlapping (or merely interleaved, as class planes are) source and
    destination through a temporary as large as the source, up to the whole accumulator; row
    blocks no taller than ``n`` never overlap, so they are copied in place, top down.
    """
    step = max(1, min(n, FINISH_ROWS))
    for c in range(acc.shape[0]):
        plane = acc[c]
        for y in range(0, rest, step):
            k = min(step, rest - y)
            plane[y:y + k] = plane[n + y:n + y + k]
