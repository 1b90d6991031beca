"""Finished rows of the model grid written back on the input raster's own grid.

When a raster is read at the model's ground resolution (:mod:`agriseg.raster.resample`), the
stitcher finishes rows of the *model* grid. :class:`BackToInput` sits between it and the
writers: each input pixel takes the class (and confidence) of the model pixel under its centre
(nearest: class ids are never blended), and rows are passed on as soon as the model rows under
them are finished, so the outputs have the input's exact size and transform and memory stays
a few rows deep.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from agriseg.infer.stitcher import FinishedRows
from agriseg.raster.resample import ResamplePlan, nearest_index


class BackToInput:
    """A row sink on the model grid that writes to ``sink`` on the ``height`` x ``width``
    input grid."""

    def __init__(self, sink, plan: ResamplePlan, height: int, width: int) -> None:
        self.sink, self.height = sink, height
        self.src_rows = nearest_index(height, plan.factor_y, plan.height)
        self.src_cols = nearest_index(width, plan.factor_x, plan.width)
        self.next_y = 0  # next input row to write
        self.held_y0 = 0  # model row of the first held row
        self.classes: np.ndarray | None = None  # held model rows
        self.conf: np.ndarray | None = None

    def write(self, rows: Iterable[FinishedRows]) -> None:
        out = []
        for fin in rows:
            if fin.y0 != self.held_y0 + (0 if self.classes is None else len(self.classes)):
                raise ValueError(f"model rows must arrive in order: got {fin.y0}")
            self.classes = _append(self.classes, fin.classes)
            self.conf = _append(self.conf, fin.confidence)
            end = self.held_y0 + len(self.classes)
            stop = int(np.searchsorted(self.src_rows, end, side="left"))  # rows all under end
            if stop <= self.next_y:
                continue
            idx = self.src_rows[self.next_y:stop] - self.held_y0
            out.append(FinishedRows(
                self.next_y, self.classes[idx][:, self.src_cols],
                None if self.conf is None else self.conf[idx][:, self.src_cols]))
            self.next_y = stop
            needed = self.src_rows[stop] if stop < self.height else end
            keep = min(int(needed), end) - self.held_y0
            self.classes = self.classes[keep:]
            self.conf = None if self.conf is None else self.conf[keep:]
            self.held_y0 += keep
        if out:
            self.sink.write(out)


def _append(held: np.ndarray | None, rows: np.ndarray | None) -> np.ndarray | None:
    if rows is None:
        return None
    return rows if held is None or not len(held) else np.concatenate([held, rows])
