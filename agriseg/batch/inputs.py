"""What a batch maps: rasters found from paths, folders, globs and manifest CSVs.

Every raster becomes a :class:`BatchItem` with a folder name (``key``) under the output root
that stays the same from run to run, so a re-run finds its earlier results. Rasters found in a
folder keep their path below it (``incoming/farmA/f1.tif`` -> ``farmA__f1``); named files and
globs use the file's stem. Of two rasters that would share a name, the one that does not
already own the folder gets a short hash of its full path appended (``f1-3fa2c91b``), so they
never overwrite each other (see ``run._Planner.folder_for``).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agriseg.errors import ConfigError, InputNotFoundError
from agriseg.vector.export import format_for

RASTER_SUFFIXES = (".tif", ".tiff")
MANIFEST_SUFFIXES = (".csv",)
# names under the output root that belong to the batch itself, never to a raster's folder
RESERVED = {"runs", "index", "index.gpkg"}

log = logging.getLogger("agriseg")


@dataclass(frozen=True)
class BatchItem:
    """One raster to map, with its folder name under the output root and its own options
    (manifest columns; empty means the batch's)."""

    path: Path
    key: str
    overrides: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


# manifest columns beside ``path``: the model, the polygon format and every map option
_INT = {"patch_px", "overlap_px", "batch_size", "connectivity"}
_FLOAT = {"min_area_m2", "fill_holes_m2", "simplify_m"}
MANIFEST_COLUMNS = ("model", "format", "patch_px", "overlap_px", "batch_size", "device",
                    "blend", "bands", "amp", "classes", "min_area_m2", "fill_holes_m2",
                    "simplify_m", "connectivity", "crs", "tta")


def find_rasters(inputs: Sequence[str | os.PathLike], *, exclude: Path | None = None
                 ) -> list[BatchItem]:
    """The rasters named by ``inputs``, each once, in a stable order.

    ``inputs`` are raster files, folders (searched recursively for .tif/.tiff; hidden files
    and anything under ``exclude``, the output root, are left out), glob patterns, or
    manifest CSVs (a ``path`` column, relative to the CSV's folder, plus optional columns of
    :data:`MANIFEST_COLUMNS`). A named file or manifest that does not exist is an error; a
    glob or folder without rasters only logs a warning (a cron job's inbox is often empty).
    """
    exclude = exclude.resolve() if exclude is not None else None
    found: list[tuple[Path, str, dict[str, Any]]] = []  # path, preferred key, overrides
    for raw in inputs:
        text = os.fspath(raw)
        p = Path(text)
        if p.is_dir():
            rasters = list(_walk(p, exclude))
            if not rasters:
                log.warning("%s: no .tif/.tiff rasters in this folder", p)
            found += [(f, _folder_key(f, p), {}) for f in rasters]
        elif p.suffix.lower() in MANIFEST_SUFFIXES:
            found += read_manifest(p)
        elif p.exists():
            found.append((p, p.stem, {}))
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True)
                             if Path(m).is_file() and not _excluded(Path(m), exclude))
            if not matches:
                log.warning("%s: the pattern matches no file", text)
            found += [(m, m.stem, {}) for m in matches]
        else:
            raise InputNotFoundError(f"{text}: no such raster, folder or manifest")
    return _unique_items(found)


def _walk(folder: Path, exclude: Path | None) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not _excluded(Path(root, d), exclude))
        for name in sorted(files):
            if name.lower().endswith(RASTER_SUFFIXES) and not name.startswith("."):
                yield Path(root, name)


def _excluded(path: Path, exclude: Path | None) -> bool:
    if exclude is None:
        return False
    resolved = path.resolve()
    return resolved == exclude or exclude in resolved.parents


def _folder_key(path: Path, folder: Path) -> str:
    rel = path.relative_to(folder).with_suffix("")
    return "__".join(rel.parts)


def read_manifest(path: Path) -> list[tuple[Path, str, dict[str, Any]]]:
    """Rows of a manifest CSV: raster path, folder name and the row's own options."""
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such manifest")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "path" not in columns:
            raise ConfigError(f"{path}: a manifest needs a 'path' column; it has "
                              f"{', '.join(columns) or 'none'}")
        unknown = sorted(set(columns) - {"path", *MANIFEST_COLUMNS})
        if unknown:
            raise ConfigError(f"{path}: unknown manifest column(s) {', '.join(unknown)}; "
                              f"allowed: path, {', '.join(MANIFEST_COLUMNS)}")
        rows = []
        for n, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            if not row.get("path"):
                continue
            raster = Path(row.pop("path"))
            if not raster.is_absolute():
                raster = path.parent / raster
            if not raster.is_file():
                raise InputNotFoundError(f"{path}, line {n}: {raster}: no such raster")
            rows.append((raster, raster.stem, _parse_row(row, path, n)))
    return rows


def _parse_row(row: dict[str, str], path: Path, line: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, text in row.items():
        if not text:
            continue
        try:
            if name == "batch_size" and text.strip().lower() == "auto":
                out[name] = "auto"
            elif name in _INT:
                out[name] = int(text)
            elif name in _FLOAT:
                out[name] = float(text)
            elif name == "bands":
                out[name] = tuple(int(b) for b in text.replace(";", ",").split(","))
            elif name == "classes":
                out[name] = tuple(c.strip() for c in text.replace(";", ",").split(",")
                                  if c.strip())
            elif name == "amp":
                out[name] = text.lower() in ("1", "true", "yes", "on")
            elif name == "model":
                model = Path(text)
                out[name] = str(model if model.is_absolute() else path.parent / model)
            elif name == "format":
                out[name] = _format(text)
            else:
                out[name] = text
        except ValueError as e:
            raise ConfigError(f"{path}, line {line}: bad {name} {text!r} ({e})") from None
    return out


def _format(text: str) -> str:
    try:
        return format_for(f"fields.{text}", text)
    except ConfigError as e:
        raise ValueError(str(e)) from None


def _unique_items(found: list[tuple[Path, str, dict[str, Any]]]) -> list[BatchItem]:
    """One item per raster (the first mention wins). Which of two rasters with one name
    gets the plain folder name is the planner's call (it knows the earlier runs)."""
    seen: dict[Path, tuple[Path, str, dict[str, Any]]] = {}
    for path, key, over in found:
        seen.setdefault(path.resolve(), (path, key, over))
    items = []
    for resolved, (path, key, over) in seen.items():
        key = _safe_key(key)
        if key.lower() in RESERVED:
            key = f"{key}-{path_hash(resolved)}"
        items.append(BatchItem(path=path, key=key, overrides=over))
    return items


def _safe_key(key: str) -> str:
    """A folder name: no separators, no leading dot (hidden names are the batch's temps)."""
    key = key.replace(os.sep, "__").replace("/", "__").strip()
    return key.lstrip(".") or "raster"


def path_hash(path: Path) -> str:
    return hashlib.sha1(os.fsencode(str(path))).hexdigest()[:8]
