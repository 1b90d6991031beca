"""ESRI Shapefile as a sprayer terminal reads it: one file set, short field names, atomic.

All classes go to one file set with ``class_id`` and ``class_name`` fields, which is what
sprayer terminals import (not one file per class). DBF field names hold at most 10 bytes:
longer names are truncated and de-duplicated deterministically (``_1``, ``_2``...), with a
warning. The ``.prj`` is written when the layer has a CRS and the ``.cpg`` says UTF-8, so class
names such as ``mauvaise_herbe_é`` survive. A Shapefile is a set of files, so it is written in
a temporary folder beside the target; only when the whole set is there is the old set (with
``overwrite``) removed and the new files moved in, ``.shp`` last, so a reader never finds a
``.shp`` whose ``.dbf`` belongs to another run.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd

from agriseg.errors import OutputError
from agriseg.outputs import check_output

log = logging.getLogger("agriseg")
# Files a Shapefile may consist of; all are removed when an old set is overwritten.
SHP_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".fix", ".shp.xml",
             ".qml")
DBF_NAME_BYTES = 10


def dbf_names(columns: list[str]) -> dict[str, str]:
    """Map column names to unique DBF field names of at most 10 bytes (UTF-8).

    Short names are kept as they are and reserved first; long ones are truncated in column
    order and, on a clash (DBF names compare case-insensitively), end in ``_1``, ``_2``...
    """
    taken = {c.casefold() for c in columns if len(c.encode()) <= DBF_NAME_BYTES}
    renames: dict[str, str] = {}
    for col in columns:
        if len(col.encode()) <= DBF_NAME_BYTES:
            continue
        name, n = _truncate(col, DBF_NAME_BYTES), 0
        while name.casefold() in taken:
            n += 1
            tail = f"_{n}"
            name = _truncate(col, DBF_NAME_BYTES - len(tail)) + tail
        taken.add(name.casefold())
        renames[col] = name
    return renames


def _truncate(name: str, nbytes: int) -> str:
    """Cut ``name`` to ``nbytes`` of UTF-8 without splitting a character."""
    return name.encode()[:nbytes].decode(errors="ignore")


def check_shapefile_free(path: Path, overwrite: bool) -> None:
    """Check the ``.shp`` like any output, and refuse to mix into a stray ``.dbf``/``.prj``."""
    check_output(path, overwrite)
    if overwrite:
        return
    for part in shapefile_parts(path):
        if part.exists():
            raise OutputError(f"{path}: {part.name} already exists; pass --overwrite to "
                              "replace the shapefile")


def shapefile_parts(path: Path) -> list[Path]:
    return [path.with_suffix(ext) for ext in SHP_PARTS]


def write_shapefile(gdf: gpd.GeoDataFrame, path: Path, overwrite: bool,
                    write: Callable[[gpd.GeoDataFrame, Path], None],
                    sidecars: dict[str, str] | None = None) -> None:
    """Write the file set in a temporary folder beside ``path``, then move it into place.

    ``write(gdf, dst)`` writes the Shapefile itself (the exporter's OGR writer);
    ``sidecars`` maps suffixes to the text of files that belong to the set (``".qml"``: the
    QGIS style). Long column names are renamed first (:func:`dbf_names`), with a warning.
    """
    renames = dbf_names([c for c in gdf.columns if c != gdf.geometry.name])
    if renames:
        log.warning("%s: Shapefile field names are at most 10 characters; renamed %s", path,
                    ", ".join(f"{old!r} -> {new!r}" for old, new in renames.items()))
        gdf = gdf.rename(columns=renames)
    parent = path.parent if str(path.parent) else Path(".")
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".part", dir=parent))
    try:
        write(gdf, tmpdir / path.name)
        if not (tmpdir / path.name).exists():
            raise RuntimeError(f"nothing was written to {tmpdir / path.name}")
        for suffix, text in (sidecars or {}).items():
            (tmpdir / path.name).with_suffix(suffix).write_text(text, encoding="utf-8")
        _move_shapefile_set(tmpdir, path, overwrite)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _move_shapefile_set(tmpdir: Path, path: Path, overwrite: bool) -> None:
    """Replace the old set (if any) by the new one, ``.shp`` removed first and moved in last.

    Readers open a shapefile by its ``.shp``, so between the two sets there is briefly no
    shapefile at all, never one with parts from two runs. If a move fails, the parts already
    moved are removed again: no ``.shp`` without its ``.dbf``.
    """
    new = sorted(tmpdir.iterdir(), key=lambda p: (p.suffix.lower() == ".shp", p.name))
    if overwrite:
        for old in shapefile_parts(path):
            old.unlink(missing_ok=True)
    moved: list[Path] = []
    try:
        for part in new:
            dest = path.parent / part.name
            os.replace(part, dest)
            moved.append(dest)
    except BaseException:
        for dest in moved:
            dest.unlink(missing_ok=True)
        raise
