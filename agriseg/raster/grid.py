"""The patch grid: where overlapping patches sit so that every pixel is covered.

Patches step by ``patch - overlap``; the last row and column are aligned to the raster's edge
(never running past it), so edge pixels get full-size patches with real context instead of
padding. Only a raster smaller than one patch is padded (by reflection, in the reader), and then
the patch shrinks to the raster size rounded up to the model's input divisor so no compute is
wasted on padding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rasterio.windows import Window

from agriseg.errors import ConfigError


def axis_positions(length: int, patch: int, stride: int) -> list[int]:
    """Start offsets along one axis: ``0, stride, 2*stride, ...`` and one flush with the end."""
    if length <= patch:
        return [0]
    last = length - patch
    positions = list(range(0, last, stride))
    positions.append(last)
    return positions


def default_overlap(patch_px: int) -> int:
    """1/8 of the patch (64 px for 512 px patches): enough to hide border effects."""
    return patch_px // 8


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


@dataclass(frozen=True)
class PatchGrid:
    """Patch positions for a ``height`` x ``width`` raster.

    ``patch_h``/``patch_w`` are the model input sizes; ``read_h``/``read_w`` what is read from
    the raster (smaller only when the raster is smaller than a patch; the rest is padded).
    """

    height: int
    width: int
    patch_h: int
    patch_w: int
    overlap_px: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @property
    def read_h(self) -> int:
        return min(self.patch_h, self.height)

    @property
    def read_w(self) -> int:
        return min(self.patch_w, self.width)

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def windows(self) -> Iterator[tuple[int, int, Window]]:
        """Yield ``(row_index, col_index, window)`` in row-major order."""
        for i, y in enumerate(self.rows):
            for j, x in enumerate(self.cols):
                yield i, j, Window(x, y, self.read_w, self.read_h)

    def final_row(self, i: int) -> int:
        """Rows above this are covered by no patch row after ``i``: safe to finish."""
        return self.rows[i + 1] if i + 1 < len(self.rows) else self.height


def make_grid(height: int, width: int, patch_px: int, overlap_px: int,
              divisor: int = 1) -> PatchGrid:
    """Lay out patches of ``patch_px`` (a multiple of ``divisor``) overlapping by ``overlap_px``."""
    if height <= 0 or width <= 0:
        raise ConfigError(f"raster size must be positive, got {width}x{height}")
    if patch_px <= 0:
        raise ConfigError(f"patch size must be positive, got {patch_px}")
    if patch_px % divisor:
        lo = max(divisor, patch_px // divisor * divisor)
        raise ConfigError(f"patch size {patch_px} is not divisible by the model's output stride "
                          f"{divisor}; use {lo} or {lo + divisor}")
    if not 0 <= overlap_px < patch_px:
        raise ConfigError(f"overlap {overlap_px} px must be >= 0 and smaller than the patch size "
                          f"{patch_px} px")
    stride = patch_px - overlap_px
    patch_h = min(patch_px, _round_up(height, divisor))
    patch_w = min(patch_px, _round_up(width, divisor))
    return PatchGrid(height=height, width=width, patch_h=patch_h, patch_w=patch_w,
                     overlap_px=overlap_px,
                     rows=tuple(axis_positions(height, patch_h, stride)),
                     cols=tuple(axis_positions(width, patch_w, stride)))
