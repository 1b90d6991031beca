"""Shared helpers for the benchmarks: generated fields, small checkpoints, peak RSS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from agriseg.models.card import ModelCard, Normalization
from agriseg.models.checkpoint import save_checkpoint
from agriseg.models.registry import create_model
from agriseg.raster.synthetic import make_field

OUT = Path(os.environ.get("AGRISEG_BENCH_DIR", Path(__file__).parent / "out"))


def field(size: int, seed: int = 0) -> Path:
    """A generated ``size`` x ``size`` RGB field, cached under bench/out."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"field_{size}.tif"
    if not path.exists():
        t = time.perf_counter()
        make_field(path, width=size, height=size, seed=seed)
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


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (peak resident memory in MiB, wall seconds) of that process alone."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err}")
    return usage.ru_maxrss / 1024.0, wall  # ru_maxrss is in KiB on Linux


def agriseg_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "agriseg", "-q", *map(str, args)]
