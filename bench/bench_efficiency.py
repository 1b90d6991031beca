"""Efficiency: how close ``predict_raster`` comes to the model's own speed (CPU).

The same patches are pushed through the model alone (pre-read, pre-normalized, in memory) and
through the whole pipeline (read, normalize, forward, blend, write COG). The ratio
model-time / pipeline-time is the share of wall time spent doing useful model work; target
>= 0.85. Both are measured in this one process, alternating, best of ``repeats``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from agriseg.infer.pipeline import iter_batches, predict_raster
from agriseg.infer.predictor import Predictor
from agriseg.models.checkpoint import Model, load_checkpoint
from agriseg.models.registry import input_divisor
from agriseg.raster.grid import make_grid
from agriseg.raster.io import open_raster
from agriseg.raster.reader import StripReader
from bench.common import OUT, checkpoint, field

TARGET = 0.85


def model_only_seconds(predictor: Predictor, batches: list[np.ndarray]) -> float:
    t = time.perf_counter()
    for b in batches:
        predictor(b)
    return time.perf_counter() - t


def run(size: int = 4096, arch: str = "deeplabv3plus", encoder: str = "resnet18",
        batch_size: int = 8, repeats: int = 2) -> dict:
    src, ckpt = field(size), checkpoint(arch, encoder)
    model, card = load_checkpoint(ckpt)
    with open_raster(src) as ds:
        grid = make_grid(ds.height, ds.width, card.patch_px, card.patch_px // 8,
                         input_divisor(model))
        batches = [b.images for b in iter_batches(StripReader(ds, [1, 2, 3], grid), grid, card,
                                                  batch_size)]
    predictor = Predictor(model, device="cpu")
    predictor(batches[0][:1])  # warm-up: first call pays for kernel selection
    pure, pipe = [], []
    out = OUT / f"eff_mask_{size}.tif"
    for _ in range(repeats):
        pure.append(model_only_seconds(predictor, batches))
        t = time.perf_counter()
        predict_raster(src, out, model=Model(model, card), batch_size=batch_size, device="cpu",
                       overwrite=True)
        pipe.append(time.perf_counter() - t)
    best_pure, best_pipe = min(pure), min(pipe)
    ratio = best_pure / best_pipe
    print(f"  {len(grid)} patches of {card.patch_px} px, {arch}/{encoder}, batch {batch_size}")
    print(f"  model alone: {best_pure:.2f} s   whole pipeline: {best_pipe:.2f} s "
          f"(runs: {[round(x, 2) for x in pure]} / {[round(x, 2) for x in pipe]})")
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    print(f"efficiency model/pipeline = {ratio:.3f} (target >= {TARGET}) {verdict}")
    return {"size": size, "patches": len(grid), "model": f"{arch}/{encoder}",
            "model_s": round(best_pure, 2), "pipeline_s": round(best_pipe, 2),
            "ratio": round(ratio, 3), "target": TARGET, "pass": ratio >= TARGET}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--arch", default="deeplabv3plus")
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    print(json.dumps(run(a.size, a.arch, repeats=a.repeats), indent=2))
