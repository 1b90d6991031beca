"""Writing rasters strip by strip and finishing them as Cloud-Optimized GeoTIFFs.

Rows arrive from the stitcher in strips of arbitrary height; they are buffered to whole block
rows so GDAL never has to re-read and re-compress a half-written block. The staged tiled GeoTIFF
is then copied by GDAL's COG driver, which builds the overviews (nearest/mode for classes: never
a smoothing kernel that would invent class ids) and lays the file out for HTTP range reads.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS

from agriseg.constants import NODATA
from agriseg.outputs import atomic_file_set
from agriseg.styles import (
    category_names_pam,
    class_styles,
    confidence_qml,
    mask_qml,
    style_path,
)

Resampling = Literal["nearest", "mode", "average"]


class StripWriter:
    """Sequential writer of a single-band uint8 raster, one block row at a time."""

    def __init__(self, path: str | os.PathLike, *, width: int, height: int, crs: CRS | None,
                 transform: Affine, nodata: int = NODATA, blocksize: int = 256,
                 colormap: dict[int, tuple[int, ...]] | None = None,
                 tags: dict[str, str] | None = None, description: str | None = None,
                 compress: str = "deflate") -> None:
        profile: dict[str, Any] = dict(
            driver="GTiff", width=width, height=height, count=1, dtype="uint8", nodata=nodata,
            tiled=True, blockxsize=blocksize, blockysize=blocksize, compress=compress,
            BIGTIFF="IF_SAFER", transform=transform)
        if crs is not None:
            profile["crs"] = crs
        self.ds = rasterio.open(path, "w", **profile)
        if colormap:
            self.ds.write_colormap(1, colormap)
        if tags:
            self.ds.update_tags(**tags)
        if description:
            self.ds.set_band_description(1, description)
        self.block, self.width, self.height = blocksize, width, height
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0
        self.next_row = 0

    def write(self, y0: int, rows: np.ndarray) -> None:
        """Append ``rows`` (shape ``(n, width)``), which must start at the next unwritten row."""
        if y0 != self.next_row + self.pending_rows:
            raise ValueError(f"rows must be written in order: got row {y0}, expected "
                             f"{self.next_row + self.pending_rows}")
        self.pending.append(rows)
        self.pending_rows += rows.shape[0]
        if self.pending_rows >= self.block:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self.pending:
            return
        buf = np.concatenate(self.pending, axis=0)
        n = buf.shape[0] if final else buf.shape[0] // self.block * self.block
        if n:
            window = rasterio.windows.Window(0, self.next_row, self.width, n)
            self.ds.write(buf[:n], 1, window=window)
            self.next_row += n
        self.pending = [buf[n:]] if n < buf.shape[0] else []
        self.pending_rows = buf.shape[0] - n

    def close(self) -> None:
        self._flush(final=True)
        self.ds.close()
        if self.next_row != self.height:
            raise RuntimeError(f"wrote {self.next_row} of {self.height} rows")

    def __enter__(self) -> StripWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.ds.close()


def to_cog(src_path: str | os.PathLike, dst_path: str | os.PathLike,
           resampling: Resampling = "nearest", blocksize: int = 512) -> None:
    """Copy a staged GeoTIFF to a Cloud-Optimized GeoTIFF with internal overviews."""
    rasterio.shutil.copy(str(src_path), str(dst_path), driver="COG", COMPRESS="DEFLATE",
                         BLOCKSIZE=str(blocksize), RESAMPLING=resampling.upper(),
                         OVERVIEWS="AUTO", BIGTIFF="IF_SAFER", NUM_THREADS=gdal_threads())


def gdal_threads() -> str:
    """GDAL_NUM_THREADS as set by the enclosing :func:`~agriseg.raster.io.gdal_env` (the
    user's ``--threads``) or the environment, else all cores."""
    try:
        value = rasterio.env.getenv().get("GDAL_NUM_THREADS")
    except Exception:  # noqa: BLE001 - no rasterio.Env is active
        value = None
    return str(value or os.environ.get("GDAL_NUM_THREADS") or "ALL_CPUS")


@contextlib.contextmanager
def cog_writer(dst: str | os.PathLike, *, overwrite: bool, resampling: Resampling,
               sidecars: Mapping[Path, str] | None = None,
               **writer_kw: Any) -> Iterator[StripWriter]:
    """A :class:`StripWriter` whose result appears at ``dst`` as a COG, whole or not at all.

    ``sidecars`` (path -> text: a QGIS style, GDAL's ``.aux.xml``) appear and are replaced
    together with the COG (:func:`~agriseg.outputs.atomic_file_set`).
    """
    sidecars = dict(sidecars or {})
    with atomic_file_set(dst, list(sidecars), overwrite=overwrite) as (tmp, side_tmps):
        stage = tmp.with_name(tmp.name + ".stage.tif")
        # the stage is read once by the COG driver and deleted: LZW writes it 5x faster than
        # DEFLATE (0.09 s vs 0.48 s for a 4096^2 mask) while the model runs
        with StripWriter(stage, compress="lzw", **writer_kw) as writer:
            yield writer
        to_cog(stage, tmp, resampling=resampling)
        for side_tmp, text in zip(side_tmps, sidecars.values(), strict=True):
            side_tmp.write_text(text, encoding="utf-8")


def class_colormap(colors: Sequence[Sequence[int]]) -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table: class colours, and 255 (no-data) fully transparent.

    A GeoTIFF stores a uint8 colour table as 256 RGB entries without alpha: GDAL reads the
    entries of no class back as opaque black, and only the no-data entry as transparent. So
    the classes are named and listed elsewhere: GDAL category names in ``<mask>.aux.xml``,
    and the ``.qml`` style, which lists only the classes (:func:`class_mask_sidecars`).
    """
    cmap = {i: (int(c[0]), int(c[1]), int(c[2]), 255) for i, c in enumerate(colors)}
    cmap[NODATA] = (0, 0, 0, 0)
    return cmap


def class_mask_sidecars(dst: str | os.PathLike, classes: Sequence[str],
                        colors: Sequence[Sequence[int]]) -> dict[Path, str]:
    """The files beside a class mask that name its classes for GIS users.

    ``<mask>.aux.xml`` holds GDAL category names (what ``gdalinfo`` and GDAL-based tools
    show), ``<mask stem>.qml`` the paletted QGIS style that QGIS loads with the mask: only the
    classes, in their colours and named.
    """
    dst = Path(dst)
    styles = class_styles(list(classes), list(colors))
    return {pam_path(dst): category_names_pam(styles), style_path(dst): mask_qml(styles)}


def confidence_sidecars(dst: str | os.PathLike) -> dict[Path, str]:
    """The QGIS style beside a confidence raster: 0-100 % on a red-yellow-green ramp."""
    return {style_path(dst): confidence_qml()}


def pam_path(raster: str | os.PathLike) -> Path:
    """Where GDAL keeps what a GeoTIFF cannot hold (category names): ``<file>.aux.xml``."""
    raster = Path(raster)
    return raster.with_name(raster.name + ".aux.xml")


def class_tags(classes: Sequence[str], colors: Sequence[Sequence[int]]) -> dict[str, str]:
    """Metadata tags naming the classes, readable by agriseg and visible in QGIS/gdalinfo."""
    tags = {"classes": json.dumps(list(classes)),
            "class_colors": json.dumps([list(map(int, c)) for c in colors])}
    tags.update({f"CLASS_{i}": name for i, name in enumerate(classes)})
    return tags
