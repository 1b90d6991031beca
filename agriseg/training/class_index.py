"""Where each class occurs, so class-balanced sampling can find rare pixels without searching.

Weeds may cover well under 1% of a field; uniform random windows then rarely show one, and the
model learns to ignore them. Searching the labels for a weed at every draw would read whole
rasters per window, so the labels are read **once**, at full resolution, in strips of ``cell_px``
rows (bounded memory, and a 3-pixel weed is not lost as it would be by a decimated read). The
image is cut into ``cell_px`` x ``cell_px`` cells and, for every cell and every class in it, one
pixel of that class is kept (the first in row-major order). A draw picks a class, then one of
its cells uniformly, and centres the window near that pixel. The index holds at most one point
per cell and class: about 150,000 points for a 50,000 px square image with 128 px cells.
Image no-data is not consulted (it would need a full read of the image); a window whose centre
turns out to be no-data just has its labels set to 255 there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from agriseg.constants import NODATA


@dataclass(frozen=True)
class ClassIndex:
    """Per class: pixel count, and points ``(image, row, col)`` -- one per cell holding it."""

    counts: np.ndarray  # (num_classes,) int64, full-resolution pixel counts
    points: dict[int, np.ndarray]  # class id -> (n, 3) int32

    def draw_weights(self, classes: Sequence[int] | None) -> tuple[list[int], np.ndarray]:
        """Classes to balance and their draw probabilities, inverse to their frequency.

        By default every class but background (0) that occurs is balanced, so with crop at 20%
        and weed at 0.5% of the pixels a weed centre is drawn 40 times as often as a crop one.
        """
        pool = [c for c in (classes if classes is not None else range(1, len(self.counts)))
                if 0 <= c < len(self.counts) and self.counts[c] > 0 and c in self.points]
        if not pool:
            return [], np.zeros(0)
        w = 1.0 / self.counts[pool].astype(np.float64)
        return pool, w / w.sum()


def build_class_index(read_labels: Callable[[int, Window], np.ndarray],
                      shapes: Sequence[tuple[int, int]], num_classes: int,
                      cell_px: int) -> ClassIndex:
    """Scan the labels of every image (``read_labels(image, window)``, ``shapes`` = (h, w))."""
    counts = np.zeros(num_classes, dtype=np.int64)
    found: dict[int, list[np.ndarray]] = {}
    for k, (height, width) in enumerate(shapes):
        n_cells = -(-width // cell_px)
        for y0 in range(0, height, cell_px):
            h = min(cell_px, height - y0)
            strip = read_labels(k, Window(0, y0, width, h))
            padded = np.full((h, n_cells * cell_px), NODATA, dtype=strip.dtype)
            padded[:, :width] = strip
            # (cells, h * cell_px): each row holds one cell's pixels in row-major order
            cells = padded.reshape(h, n_cells, cell_px).transpose(1, 0, 2).reshape(n_cells, -1)
            values, n = np.unique(strip, return_counts=True)
            for c, cnt in zip(values.tolist(), n.tolist(), strict=True):
                if c == NODATA or c >= num_classes:
                    continue
                counts[c] += cnt
                hit = cells == c
                which = np.flatnonzero(hit.any(axis=1))
                first = hit[which].argmax(axis=1)
                pts = np.stack([np.full(which.size, k), y0 + first // cell_px,
                                which * cell_px + first % cell_px], axis=1)
                found.setdefault(c, []).append(pts.astype(np.int32))
    points = {c: np.concatenate(v) for c, v in found.items()}
    return ClassIndex(counts=counts, points=points)
