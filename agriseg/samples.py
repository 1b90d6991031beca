"""Which images go with which labels, and which train or validate: shared by training and
evaluation (one pairing rule for both).

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
from agriseg.vector.labels import VECTOR_SUFFIXES, is_vector_path

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
    """Pair every image with its labels by file name; one :class:`Sample` per image.

    The one pairing rule of agriseg, used by training and evaluation alike:

    * ``images`` is a folder (its GeoTIFFs, minus files named like labels), a glob, or a list.
    * ``labels`` None: look beside each image for ``<stem>_labels.tif``, ``<stem>.gpkg``, etc.
    * ``labels`` one file: it covers every image (a polygon layer or a label mosaic), unless it
      is a label raster named after one image of several, which is a count mismatch.
    * ``labels`` a folder, glob or list: each image takes the one label file whose name minus
      ``_labels``/``_label``/``_mask``/``_gt`` is the image's stem. Two candidates for one image
      are an error (never a guess), and so is an image without labels while others have them.
    * Only when *no* label file names any image, and both are lists of files of equal length,
      are they paired in the order given, with a warning saying so.
    """
    image_paths = [p for p in _expand(images, "image", IMAGE_SUFFIXES) if not _is_label_file(p)]
    if not image_paths:
        raise InputNotFoundError(f"{images}: no images found (only label files)")
    aoi_path = Path(aoi) if aoi is not None else None
    if aoi_path is not None and not aoi_path.is_file():
        raise InputNotFoundError(f"{aoi}: area-of-interest file not found")
    label_items = None if labels is None else _items(labels)
    if label_items is not None and len(label_items) == 1 and _is_plain_file(label_items[0]):
        single = Path(label_items[0])
        if len(image_paths) > 1 and not is_vector_path(single) \
                and label_key(single) in {p.stem for p in image_paths}:
            raise _count_error(image_paths, label_items)
        return [Sample(p, single, label_field, aoi_path) for p in image_paths]
    if label_items is None:
        candidates = [q for p in image_paths for q in sorted(p.parent.iterdir()) if q.is_file()]
    else:
        candidates = _expand(label_items, "label", IMAGE_SUFFIXES | VECTOR_SUFFIXES)
    found = {p: _label_candidates(p, candidates, set(image_paths)) for p in image_paths}
    for image, hits in found.items():
        if len(hits) > 1:
            raise ConfigError(f"{image}: several label files match: {', '.join(map(str, hits))}; "
                              f"keep one or list the labels explicitly")
    if not any(found.values()) and label_items is not None \
            and all(_is_plain_file(i) for i in [*_items(images), *label_items]):
        return _pair_in_order(image_paths, candidates, label_field, aoi_path)
    for image, hits in found.items():
        if not hits:
            raise ConfigError(f"{image}: no labels found for this image; expected e.g. "
                              f"{image.stem}_labels.tif or {image.stem}.gpkg (matched by file "
                              f"name)")
    return [Sample(p, found[p][0], label_field, aoi_path) for p in image_paths]


def _items(arg: PathsArg) -> list[str | os.PathLike]:
    return [arg] if isinstance(arg, (str, os.PathLike)) else list(arg)


def _is_plain_file(item: str | os.PathLike) -> bool:
    return not _is_glob(str(item)) and Path(item).is_file()


def _pair_in_order(images: list[Path], labels: list[Path], label_field: str | None,
                   aoi: Path | None) -> list[Sample]:
    """The fallback when no file name pairs anything: the order given, said out loud."""
    if len(images) != len(labels):
        raise _count_error(images, labels)
    log.warning("no label file is named after an image; pairing images and labels in the order "
                "given: %s", ", ".join(f"{i.name} <- {lab.name}"
                                       for i, lab in zip(images, labels, strict=True)))
    return [Sample(i, lab, label_field, aoi) for i, lab in zip(images, labels, strict=True)]


def _count_error(images: list, labels: list) -> ConfigError:
    return ConfigError(f"{len(images)} image(s) but {len(labels)} label file(s), and their names "
                       f"do not match; give one label file per image (same order), label files "
                       f"named <image>_labels.tif, or one polygon file for all")


def _label_candidates(image: Path, candidates: list[Path], images: set[Path]) -> list[Path]:
    """Candidates whose label key is the image's stem (the image itself excluded)."""
    suffixes = IMAGE_SUFFIXES | VECTOR_SUFFIXES
    return list(dict.fromkeys(
        c for c in candidates if c not in images and c.suffix.lower() in suffixes
        and c.resolve() != image.resolve() and label_key(c) == image.stem))


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


def fold_samples(samples: Sequence[Sample], folds: int, *, seed: int = 0) -> list[list[Sample]]:
    """``folds`` disjoint groups of whole images for cross-validation, reproducible from ``seed``.

    Images are sorted by name, shuffled with ``numpy.random.default_rng(seed)`` (as
    :func:`split_samples` does) and dealt in turn, so every image is in exactly one fold and fold
    sizes differ by at most one. Fold ``i`` validates on its images and trains on the others.
    """
    ordered = sorted(samples, key=lambda s: (s.image.name, str(s.image)))
    if not 2 <= folds <= len(ordered):
        raise ConfigError(f"cannot make {folds} cross-validation folds from {len(ordered)} "
                          f"image(s): folds are by whole image; use 2 to {len(ordered)} folds"
                          if len(ordered) >= 2 else
                          f"cross-validation needs at least 2 images, found {len(ordered)}")
    order = np.random.default_rng(seed).permutation(len(ordered))
    groups: list[list[Sample]] = [[] for _ in range(folds)]
    for pos, i in enumerate(order.tolist()):
        groups[pos % folds].append(ordered[i])
    return [sorted(g, key=lambda s: (s.image.name, str(s.image))) for g in groups]
