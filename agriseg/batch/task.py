"""One raster's job in a batch, as run by a worker process (local or Dask).

:func:`run_task` calls :func:`~agriseg.jobs.fieldmap.map_field` unchanged, then writes the
completion record, and always returns an :class:`Outcome` rather than raising: a bad raster
is a failed outcome with its one-line reason, never a dead batch. Each worker process keeps the
models it loaded (:func:`cached_engine`), so a worker mapping a hundred rasters loads its model
once. PyTorch is imported inside the functions: the batch's own process plans and reports
and never needs it.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agriseg import __version__
from agriseg.batch.state import write_record
from agriseg.errors import AgrisegError, first_line

if TYPE_CHECKING:
    from agriseg.infer.engines import Engine

# a worker keeps this many models in memory (a manifest may name several)
MODELS_KEPT = 4
_MODELS: dict[tuple, Engine] = {}
_LOADS: list[int] = [0]


@dataclass(frozen=True)
class Task:
    """Everything a worker needs to map one raster; plain values, so it pickles anywhere."""

    key: str
    raster: str
    folder: str
    model: str
    model_sha256: str
    options: dict[str, Any]
    fmt: str
    fingerprint: dict[str, Any]
    parameters: dict[str, Any]
    reason: str = "new"
    torch_threads: int | None = None  # the model's CPU threads (PyTorch or ONNX Runtime)


@dataclass
class Outcome:
    """What became of a task: ``done`` or ``failed`` with a one-line ``reason``.

    ``transient`` failures (a dead or hung worker, an I/O or memory error) may succeed when
    retried; a bad raster or option (an ``AgrisegError``) would fail the same way again.
    """

    key: str
    status: str
    reason: str = ""
    transient: bool = False
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    worker: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    attempts: int = 1


def run_task(task: Task) -> Outcome:
    """Map ``task.raster`` into ``task.folder`` and record its completion."""
    from agriseg.jobs.fieldmap import map_field  # PyTorch: only in the worker

    t0 = time.perf_counter()
    tune_malloc()
    try:
        engine = cached_engine(task)
        result = map_field(task.raster, task.folder, model=engine, fmt=task.fmt,
                           overwrite=True, progress=False, **task.options)
        seconds = time.perf_counter() - t0
        figures = figures_of(result.summary, seconds)
        write_completion(task, figures)
    except AgrisegError as e:
        return Outcome(task.key, "failed", first_line(e), seconds=time.perf_counter() - t0,
                       worker=worker_info())
    except Exception as e:  # noqa: BLE001 - one raster's crash must not end the batch
        return Outcome(task.key, "failed", f"{type(e).__name__}: {first_line(e)}",
                       transient=True, seconds=time.perf_counter() - t0,
                       worker=worker_info(), detail=traceback.format_exc())
    return Outcome(task.key, "done", task.reason, seconds=seconds, figures=figures,
                   worker=worker_info())


def write_completion(task: Task, figures: dict[str, Any]) -> None:
    write_record(Path(task.folder), {
        "agriseg_version": __version__,
        "completed_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "key": task.key,
        "input": task.fingerprint,
        "model": {"path": task.model, "sha256": task.model_sha256},
        "parameters": task.parameters,
        "figures": figures,
    })


def cached_engine(task: Task) -> Engine:
    """The task's model ready to run (loaded, or exported and opened in ONNX Runtime), once
    per process for each model file content, backend and device."""
    from agriseg.infer.engines import open_engine

    o = task.options
    key = (task.model, task.model_sha256, o.get("backend", "auto"), o.get("device", "auto"),
           o.get("amp", True), task.torch_threads)
    if key not in _MODELS:
        while len(_MODELS) >= MODELS_KEPT:
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[key] = open_engine(task.model, key[2], key[3], key[4], task.torch_threads)
        _LOADS[0] += 1
    return _MODELS[key]


def worker_info() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "model_loads": _LOADS[0]}


_TUNED: list[bool] = [False]
MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for its dynamic threshold on 64-bit


def tune_malloc() -> None:
    """Keep glibc from returning every large buffer to the OS between patches.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes
    glibc's mmap threshold at 128 KiB: each patch batch's tensors are then mmap'd and unmapped
    afresh, and mapping takes 1.7x as long (measured, bench/bench_batch.py). Fixing the mmap
    threshold at 32 MiB (and trimming above 64 MiB) keeps them in the heap; in any worker it
    maps ~10% faster than glibc's dynamic default. Memory still stays bounded: buffers of
    32 MiB and more are mmap'd and given back as before. No-op off glibc.
    """
    if _TUNED[0]:
        return
    _TUNED[0] = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)
        libc.mallopt(m_trim_threshold, 2 * MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass


def figures_of(summary: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The report's and index's figures for one map, from its ``summary.json``."""
    classes = summary["classes"]
    inp = summary["input"]
    mpx = inp["width"] * inp["height"] / 1e6
    return {
        # the mask's areas, as the weed share: the polygons' may be sieved and simplified
        "crop_ha": sum(c["area_ha_pixels"] for n, c in classes.items() if "crop" in n.lower()),
        "weed_ha": sum(c["area_ha_pixels"] for n, c in classes.items() if "weed" in n.lower()),
        "weed_share": summary["weed_share_of_vegetation"],
        "polygons": summary["polygons"],
        "seconds": round(seconds, 3),
        "mpx_per_s": round(mpx / seconds, 3) if seconds > 0 else None,
        "width": inp["width"], "height": inp["height"], "crs": inp["crs"],
        "bounds": inp["bounds"], "model_name": summary["model"]["name"],
        "polygons_file": summary["outputs"]["polygons"],
        "device": summary["parameters"].get("device_used"),
    }
