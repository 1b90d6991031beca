"""Shared helpers for the benchmarks: generated fields, small checkpoints, peak RSS."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from agriseg.models.card import ModelCard, Normalization
from agriseg.models.checkpoint import save_checkpoint
from agriseg.models.registry import create_model
from agriseg.sampledata.fields import make_field

OUT = Path(os.environ.get("AGRISEG_BENCH_DIR", Path(__file__).parent / "out"))


def in_data(data: Path, paths, prog: str, what: str) -> list[Path]:
    """``paths`` (from a run's ``split.json`` or ``cv.json``, absolute on the machine that
    trained) found in ``data`` by file name, sorted; refused with the missing names when any
    is not there (``what``: "the split's 9 validation images"), since scoring fewer images
    than a run holds would misreport it."""
    found = sorted(data / Path(p).name for p in paths)
    missing = [p.name for p in found if not p.is_file()]
    if missing:
        raise SystemExit(f"{prog}: {len(missing)} of {what} are not in {data}: "
                         f"{', '.join(missing)}")
    return found


def field(size: int, seed: int = 0) -> Path:
    """A generated ``size`` x ``size`` RGB field, cached under bench/out."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"field_{size}.tif"
    if not path.exists():
        t = time.perf_counter()
        make_field(path, width=size, height=size, seed=seed)
        print(f"  generated {path.name} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return path


def label_mask(size: int, seed: int = 3) -> Path:
    """The label raster of a generated ``size`` x ``size`` field: a realistic crop/weed mask."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"labels_{size}.tif"
    if not path.exists():
        t = time.perf_counter()
        image = OUT / f"labels_{size}_image.tif"
        make_field(image, width=size, height=size, seed=seed, label_path=path)
        image.unlink()
        print(f"  generated {path.name} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return path


def checkpoint(arch: str, encoder: str = "resnet18", patch_px: int = 512) -> Path:
    """A random-weight checkpoint: speed and memory do not depend on the weights' values."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{arch}_{encoder}.safetensors"
    torch.manual_seed(0)
    model = create_model(arch, encoder, in_channels=3, classes=3)
    card = ModelCard(arch={"arch": arch, "encoder_name": encoder},
                     bands=("red", "green", "blue"), classes=("soil", "crop", "weed"),
                     normalization=Normalization.from_scale(255.0, 3), patch_px=patch_px,
                     pixel_size_m=0.01, name=f"bench-{arch}-{encoder}")
    save_checkpoint(path, model, card)
    return path


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (worker processes included)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):  # the task may have ended meanwhile
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (peak resident memory in MiB, wall seconds) of it and its workers.

    Sampled every 20 ms: the larger of the command's own high-water mark (VmHWM) and the peak
    sum of resident memory over the command and its child processes. ``ru_maxrss`` from wait4
    would not do: Linux carries the parent's resident size over fork and exec, so a child of a
    big benchmark process would report at least the parent's size.
    """
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb = 0
    while proc.poll() is None:
        own = _status_kb(proc.pid, "VmHWM:")
        tree = sum(_status_kb(p, "VmRSS:") for p in _tree(proc.pid))
        peak_kb = max(peak_kb, own, tree)
        time.sleep(0.02)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err}")
    return peak_kb / 1024.0, wall


def agriseg_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "agriseg", "-q", *map(str, args)]
