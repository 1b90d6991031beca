"""Training and validation windows read straight from GeoTIFFs and their labels.

Nothing is pre-cut to disk: a window is read from the image (bands picked by name, normalized,
no-data set to 0) and its labels are read on the same window of the image grid (label rasters
resampled by nearest, polygons burnt on the fly). Label 255 means "ignore": outside the labelled
area, polygon-free pixels outside the area of interest, image no-data, and padding.

rasterio handles cannot be pickled or shared across processes, so the datasets keep only paths
and open each file on first use in each worker process (they notice a fork by the process id).
Randomness comes from ``numpy.random.default_rng((seed, epoch, i))``, so item ``i`` of an epoch
is the same whatever the number of workers. Call ``set_epoch`` before each epoch, with
``persistent_workers=False`` (workers hold a copy of the dataset made when they start).

Pairing, splitting, checks and statistics live in sibling modules and are re-exported here.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from agriseg.constants import NODATA
from agriseg.errors import ConfigError
from agriseg.models.card import Normalization
from agriseg.raster.grid import axis_positions
from agriseg.raster.io import MaskSource, open_raster
from agriseg.raster.labels import LabelReader
from agriseg.samples import Sample, pair_samples, split_samples
from agriseg.training.checks import image_bands, validate_samples
from agriseg.training.class_index import ClassIndex, build_class_index
from agriseg.training.stats import band_statistics
from agriseg.vector.labels import open_labels

__all__ = ["Sample", "pair_samples", "split_samples", "validate_samples", "band_statistics",
           "WindowDataset", "FixedWindows"]

log = logging.getLogger("agriseg")

Augment = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[Any, Any]]
MAX_TRIES = 10  # redraws of a random window that holds no labelled pixel at all


@dataclass
class _Open:
    """One image's open handles in the current process."""

    src: rasterio.DatasetReader
    labels: LabelReader
    indexes: list[int]
    mask: MaskSource


class _WindowReader(torch.utils.data.Dataset):
    """Shared by both datasets: lazy per-process handles and reading one window."""

    def __init__(self, samples: Sequence[Sample], *, patch_px: int, bands: Sequence[str] | None,
                 normalization: Normalization, num_classes: int,
                 classes: Sequence[str] | None = None) -> None:
        if not samples:
            raise ConfigError("no images to read windows from")
        if patch_px <= 0:
            raise ConfigError(f"patch size must be positive, got {patch_px}")
        self.samples = list(samples)
        self.patch_px, self.bands, self.num_classes = patch_px, bands, num_classes
        self.classes = list(classes) if classes is not None else None  # names in polygon labels
        self.normalization = normalization
        self.shapes: list[tuple[int, int]] = []
        for s in self.samples:
            with open_raster(s.image) as src:
                n = len(image_bands(src, bands))
                self.shapes.append((src.height, src.width))
            if n != len(normalization.mean):
                raise ConfigError(f"{s.image}: {n} bands selected but the normalization has "
                                  f"{len(normalization.mean)} values")
        self._open: dict[int, _Open] = {}
        self._stack = contextlib.ExitStack()
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"], state["_stack"] = {}, contextlib.ExitStack()
        return state

    def _handles(self, k: int) -> _Open:
        if self._pid != os.getpid():  # forked: the parent's handles are not ours to use
            self._open, self._stack, self._pid = {}, contextlib.ExitStack(), os.getpid()
        if k not in self._open:
            s = self.samples[k]
            src = self._stack.enter_context(open_raster(s.image))
            labels = self._stack.enter_context(open_labels(
                s.labels, src, label_field=s.label_field, classes=self.classes,
                unlabelled=NODATA, aoi=s.aoi))
            indexes = image_bands(src, self.bands)
            self._open[k] = _Open(src, labels, indexes, MaskSource.of(src, indexes))
        return self._open[k]

    def close(self) -> None:
        """Close the files opened in this process (they reopen on next use)."""
        self._stack.close()
        self._open = {}

    def read_labels(self, k: int, window: Window) -> np.ndarray:
        return self._handles(k).labels.read(window)

    def read(self, k: int, y0: int, x0: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``k`` at ``(y0, x0)``: float32 ``(C, P, P)`` and int64 ``(P, P)`` labels,
        padded (image 0, labels 255) where the image is smaller than the patch."""
        h = self._handles(k)
        height, width = self.shapes[k]
        p = self.patch_px
        win = Window(x0, y0, min(p, width - x0), min(p, height - y0))
        data = h.src.read(h.indexes, window=win)
        valid = h.mask.valid(h.src, data, h.indexes, win)
        image = self.normalization.apply(data, valid)
        labels = h.labels.read(win).astype(np.int64)
        labels[~valid] = NODATA
        bad = (labels != NODATA) & (labels >= self.num_classes)
        if bad.any():
            raise ConfigError(f"{self.samples[k].labels}: class id {labels[bad].max()} but the "
                              f"model has {self.num_classes} classes (0..{self.num_classes - 1})")
        ph, pw = p - image.shape[1], p - image.shape[2]
        if ph or pw:
            image = np.pad(image, ((0, 0), (0, ph), (0, pw)))
            labels = np.pad(labels, ((0, ph), (0, pw)), constant_values=NODATA)
        return image, labels


def _tensors(image: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(image, torch.Tensor):
        image = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    if not isinstance(labels, torch.Tensor):
        labels = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
    return image, labels


class WindowDataset(_WindowReader):
    """``length`` random training windows per epoch, optionally class-balanced.

    An image is chosen with probability proportional to its area and a window placed uniformly
    inside it. With probability ``class_balance`` the window is instead placed around a pixel of
    a rare class (chosen inverse to its frequency among ``rare_classes``, by default every
    class but 0), found through a :class:`~agriseg.training.class_index.ClassIndex` built once
    here. A window holding no labelled pixel is redrawn (up to 10 times). ``augment`` is called
    as ``augment(image, labels, rng)`` on numpy arrays (float32 ``(C, P, P)``, int64
    ``(P, P)``) with the item's generator and returns arrays or tensors.
    """

    def __init__(self, samples: Sequence[Sample], *, patch_px: int,
                 bands: Sequence[str] | None = None, normalization: Normalization,
                 length: int, seed: int = 0, class_balance: float = 0.0,
                 augment: Augment | None = None, num_classes: int,
                 classes: Sequence[str] | None = None,
                 rare_classes: Sequence[int] | None = None, cell_px: int | None = None) -> None:
        super().__init__(samples, patch_px=patch_px, bands=bands, normalization=normalization,
                         num_classes=num_classes, classes=classes)
        if length <= 0:
            raise ConfigError(f"windows per epoch must be positive, got {length}")
        if not 0.0 <= class_balance <= 1.0:
            raise ConfigError(f"class balance {class_balance} must be in [0, 1]")
        self.length, self.seed, self.epoch = length, seed, 0
        self.class_balance, self.augment = class_balance, augment
        area = np.array([h * w for h, w in self.shapes], dtype=np.float64)
        self.image_p = area / area.sum()
        self.index: ClassIndex | None = None
        self.rare: list[int] = []
        self.rare_p = np.zeros(0)
        if class_balance > 0:
            cell = cell_px or max(16, patch_px // 4)
            self.index = build_class_index(self.read_labels, self.shapes, num_classes, cell)
            self.close()  # opened in the main process; workers open their own
            self.rare, self.rare_p = self.index.draw_weights(rare_classes)
            if not self.rare:
                log.warning("class balancing: none of the classes %s occur in the labels; "
                            "sampling uniformly", rare_classes or "1..")

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's windows (item ``i`` depends on ``(seed, epoch, i)`` only)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _offset(self, centre: int, size: int, rng: np.random.Generator) -> int:
        """Window start putting ``centre`` in the middle half of the window, kept inside."""
        p = self.patch_px
        if size <= p:
            return 0
        start = centre - int(rng.integers(p // 4, p - p // 4))
        return int(np.clip(start, 0, size - p))

    def draw(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """``(image, y0, x0)`` of one random window."""
        if self.rare and rng.random() < self.class_balance:
            assert self.index is not None
            c = self.rare[int(rng.choice(len(self.rare), p=self.rare_p))]
            pts = self.index.points[c]
            k, cy, cx = (int(v) for v in pts[int(rng.integers(len(pts)))])
            height, width = self.shapes[k]
            return k, self._offset(cy, height, rng), self._offset(cx, width, rng)
        k = int(rng.choice(len(self.shapes), p=self.image_p))
        height, width = self.shapes[k]
        y0 = int(rng.integers(0, max(height - self.patch_px, 0) + 1))
        x0 = int(rng.integers(0, max(width - self.patch_px, 0) + 1))
        return k, y0, x0

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < self.length:
            raise IndexError(f"window {i} out of range (0..{self.length - 1})")
        rng = np.random.default_rng((self.seed, self.epoch, i))
        for _ in range(MAX_TRIES):
            image, labels = self.read(*self.draw(rng))
            if (labels != NODATA).any():
                break
        if self.augment is not None:
            image, labels = self.augment(image, labels, rng)
        return _tensors(image, labels)


class FixedWindows(_WindowReader):
    """Validation: every pixel of every image scored exactly once, the same way each epoch.

    Windows tile each image without overlap; the last row and column are shifted inside the
    image (full-size windows with real context rather than padding), and the strip they share
    with their neighbour is set to 255 so no pixel counts twice in the metrics. ``windows``
    lists ``(image, y0, x0)`` for each item.
    """

    def __init__(self, samples: Sequence[Sample], *, patch_px: int,
                 bands: Sequence[str] | None = None, normalization: Normalization,
                 num_classes: int, classes: Sequence[str] | None = None) -> None:
        super().__init__(samples, patch_px=patch_px, bands=bands, normalization=normalization,
                         num_classes=num_classes, classes=classes)
        self.windows: list[tuple[int, int, int]] = []
        self._seen: list[tuple[int, int]] = []  # rows/cols at the top/left already scored
        for k, (height, width) in enumerate(self.shapes):
            rows = _with_overlap(axis_positions(height, patch_px, patch_px), patch_px)
            cols = _with_overlap(axis_positions(width, patch_px, patch_px), patch_px)
            for y0, oy in rows:
                for x0, ox in cols:
                    self.windows.append((k, y0, x0))
                    self._seen.append((oy, ox))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, labels = self.read(*self.windows[i])
        oy, ox = self._seen[i]
        labels[:oy] = NODATA
        labels[:, :ox] = NODATA
        return _tensors(image, labels)


def _with_overlap(starts: list[int], size: int) -> list[tuple[int, int]]:
    """Each start with how many of its first pixels the previous window already covered."""
    return [(s, max(0, starts[i - 1] + size - s) if i else 0) for i, s in enumerate(starts)]
