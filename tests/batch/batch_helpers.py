"""Helpers for the batch tests: field rasters, output snapshots, and task functions with
faults (importable by name, as worker processes need)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pyogrio
from conftest import write_raster

from agriseg.batch.task import Outcome, Task, run_task


def field(path: Path, *, size: int = 192, seed: int = 0) -> Path:
    """A small RGB field with blobs, so the masks and polygons are not trivial."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    data = rng.integers(60, 120, (3, size, size)).astype("uint8")
    for _ in range(12):
        cy, cx, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(5, 20))]
        blob = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        data[:, blob] = rng.integers(0, 256, 3)[:, None].astype("uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_raster(path, data)


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file of the raster folders under ``root``: inode, mtime and content hash."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] not in ("runs", "index.gpkg", ".agriseg-batch.lock"):
            st = p.stat()
            out[str(rel)] = (st.st_ino, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def assert_same_maps(a: Path, b: Path, keys) -> None:
    """Masks and confidences byte-identical, polygons equal, for each raster folder."""
    for key in keys:
        for name in ("mask.tif", "confidence.tif"):
            assert (a / key / name).read_bytes() == (b / key / name).read_bytes(), (key, name)
        fa = pyogrio.read_dataframe(a / key / "fields.gpkg")
        fb = pyogrio.read_dataframe(b / key / "fields.gpkg")
        assert len(fa) > 0
        assert fa.drop(columns="geometry").equals(fb.drop(columns="geometry")), key
        assert all(ga.equals(gb) for ga, gb in zip(fa.geometry, fb.geometry, strict=True)), key


def leftovers(root: Path) -> list[Path]:
    """Hidden temporary names that atomic outputs use, anywhere under ``root``."""
    return [p for p in root.rglob(".*") if ".part" in p.name or p.name.endswith(".old")]


def faulty_task(task: Task) -> Outcome:
    """``crash`` in the raster's name kills the worker, ``hang`` hangs it, ``flaky`` kills
    the worker on the first attempt only; anything else maps normally."""
    name = Path(task.raster).stem
    if "crash" in name:
        os._exit(3)
    if "hang" in name:
        time.sleep(3600)
    if "flaky" in name:
        marker = Path(task.raster).with_suffix(".attempted")
        if not marker.exists():
            marker.touch()
            os._exit(9)
    return run_task(task)
