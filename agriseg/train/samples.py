"""Which images train and which validate: pairing images with their labels, and the split.

Users bring a folder of GeoTIFFs and labels named after them (``IMG_1.tif`` with
``IMG_1_labels.tif``, ``IMG_1.tif`` in a labels folder, or ``IMG_1.gpkg``), or one polygon file
covering every image. Pairing is by file stem, so a missing label file is caught here, by name,
before any training starts. The split is by whole image (windows of one image are correlated, so
a window-level split would leak) and reproducible from a seed.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agriseg.errors import ConfigError, InputNotFoundError
from agriseg.raster.labels import VECTOR_SUFFIXES

log = logging.getLogger("agriseg")

IMAGE_SUFFIXES = frozenset({".tif", ".tiff", ".vrt", ".jp2", ".img"})
LABEL_SUFFIXES = ("_labels", "_label", "_mask", "_gt")  # stripped from a label file's stem

PathsArg = str | os.PathLike | Sequence[str | os.PathLike]


@dataclass(frozen=True)
class Sample:
    """One training image and the file that labels it (raster, or polygons + field + AOI)."""

    image: Path
    labels: Path
    label_field: str | None = None
    aoi: Path | None = None

    @property
    def name(self) -> str:
        return self.image.name


def _is_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def _expand(arg: PathsArg, what: str, suffixes: frozenset[str] | None) -> list[Path]:
    """Files named by a folder, a glob, a file, or a list of those (sorted, no duplicates)."""
    items = [arg] if isinstance(arg, (str, os.PathLike)) else list(arg)
    out: list[Path] = []
    for item in items:
        s = str(item)
        if _is_glob(s):
            hits = [Path(p) for p in sorted(glob.glob(s)) if Path(p).is_file()]
            if not hits:
                raise InputNotFoundError(f"{s}: no {what} files match this pattern")
            out += hits
        elif Path(s).is_dir():
            hits = sorted(p for p in Path(s).iterdir() if p.is_file()
                          and (suffixes is None or p.suffix.lower() in suffixes))
            if not hits:
                kinds = ", ".join(sorted(suffixes or []))
                raise InputNotFoundError(f"{s}: folder holds no {what} files ({kinds})")
            out += hits
        elif Path(s).is_file():
            out.append(Path(s))
        else:
            raise InputNotFoundError(f"{s}: {what} file or folder not found")
    return list(dict.fromkeys(out))


def label_key(path: Path) -> str:
    """The image stem a label file belongs to: ``IMG_1_labels.tif`` -> ``IMG_1``."""
    stem = path.stem
    for suffix in LABEL_SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def _is_label_file(path: Path) -> bool:
    return label_key(path) != path.stem or path.suffix.lower() in VECTOR_SUFFIXES


def pair_samples(images: PathsArg, labels: PathsArg | None, *, label_field: str | None = None,
                 aoi: str | os.PathLike | None = None) -> list[Sample]:
    """Pair every image with its labels by file stem; one :class:`Sample` per image.

    ``images`` is a folder (its GeoTIFFs, minus files named like labels), a glob, or a list.
    ``labels`` is a folder/glob/list matched by stem, a single file covering all images (a
    polygon layer or a mosaic label raster), or None to look beside each image for
    ``<stem>_labels.tif`` / ``<stem>.gpkg``. An image without labels is a ConfigError naming it.
    """
    image_paths = [p for p in _expand(images, "image", IMAGE_SUFFIXES) if not _is_label_file(p)]
    if not image_paths:
        raise InputNotFoundError(f"{images}: no images found (only label files)")
    aoi_path = Path(aoi) if aoi is not None else None
    if aoi_path is not None and not aoi_path.is_file():
        raise InputNotFoundError(f"{aoi}: area-of-interest file not found")
    single = isinstance(labels, (str, os.PathLike)) and not _is_glob(str(labels)) \
        and Path(labels).is_file()
    if single:
        return [Sample(p, Path(labels), label_field, aoi_path) for p in image_paths]
    if labels is None:
        candidates = [q for p in image_paths for q in sorted(p.parent.iterdir()) if q.is_file()]
    else:
        candidates = _expand(labels, "label", IMAGE_SUFFIXES | VECTOR_SUFFIXES)
    return [Sample(p, _find_label(p, candidates, set(image_paths)), label_field, aoi_path)
            for p in image_paths]


def _find_label(image: Path, candidates: list[Path], images: set[Path]) -> Path:
    """The one candidate whose label key is the image's stem (the image itself excluded)."""
    suffixes = IMAGE_SUFFIXES | VECTOR_SUFFIXES
    hits = list(dict.fromkeys(
        c for c in candidates if c not in images and c.suffix.lower() in suffixes
        and c.resolve() != image.resolve() and label_key(c) == image.stem))
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ConfigError(f"{image}: no labels found for this image; expected e.g. "
                          f"{image.stem}_labels.tif or {image.stem}.gpkg (matched by file name)")
    raise ConfigError(f"{image}: several label files match: {', '.join(map(str, hits))}; "
                      f"keep one or list the labels explicitly")


def split_samples(samples: Sequence[Sample], *, val_fraction: float = 0.25,
                  val_images: Sequence[str] | None = None, seed: int = 0
                  ) -> tuple[list[Sample], list[Sample]]:
    """``(train, val)`` by whole image, reproducible from ``seed``.

    With ``val_images`` (file names or stems) those are the validation set. Otherwise the
    samples are sorted by image name, shuffled with ``numpy.random.default_rng(seed)`` and
    ``round(n * val_fraction)`` (at least 1, at most n - 1) go to validation. A single image
    cannot be split by image: it all trains, with a warning, and validation is empty.
    """
    ordered = sorted(samples, key=lambda s: (s.image.name, str(s.image)))
    if val_images:
        by_name = {k: s for s in ordered for k in (s.image.name, s.image.stem, str(s.image))}
        unknown = [v for v in val_images if str(v) not in by_name]
        if unknown:
            raise ConfigError(f"validation image {unknown[0]!r} is not among the images "
                              f"({', '.join(s.image.name for s in ordered)})")
        val_set = {by_name[str(v)] for v in val_images}
        if len(val_set) == len(ordered):
            raise ConfigError("every image is a validation image; leave some for training")
        return [s for s in ordered if s not in val_set], [s for s in ordered if s in val_set]
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"validation fraction {val_fraction} must be in [0, 1)")
    if val_fraction == 0.0:
        return ordered, []
    if len(ordered) < 2:
        log.warning("only one image: nothing left to validate on; training on all of it")
        return ordered, []
    n_val = min(max(1, round(len(ordered) * val_fraction)), len(ordered) - 1)
    order = np.random.default_rng(seed).permutation(len(ordered))
    val_idx = set(order[:n_val].tolist())
    return ([s for i, s in enumerate(ordered) if i not in val_idx],
            [s for i, s in enumerate(ordered) if i in val_idx])
