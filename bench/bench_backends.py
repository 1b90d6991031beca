"""Backends: whole ``agriseg predict`` processes on PyTorch and ONNX Runtime, each against its
own pure forward pass.

A 4096^2 field, DeepLabV3+/ResNet-18, patch 512, overlap 64, Hann blending, batch 4 (the
issue's setting). For each backend: wall time and peak RSS of the whole process (start-up, model
load, read, forward, blend, write), Mpx/s, and the efficiency eta = pure forward / wall, where
the pure forward pass runs the same windows, pre-read and normalized in memory, through the
same engine in this process. Runs alternate between the backends; best of ``repeats``. Also:
start-up (a 256^2 tile end to end), memory flatness of the ONNX path up to 16384^2 (peak RSS
ratio), and ``--resample auto`` on a raster at half the model's pixel size (Mpx/s of input).
The ONNX export is made once beforehand and cached, as after a user's first run.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import rasterio
from affine import Affine
from rasterio.enums import Resampling

from agriseg.infer.engines import open_engine
from agriseg.infer.pipeline import iter_batches, patch_grid
from agriseg.options import PredictOptions
from agriseg.raster.io import open_raster
from agriseg.raster.reader import StripReader
from bench.common import OUT, agriseg_cmd, checkpoint, field, peak_rss_mb

TARGET_ETA = 0.9
TARGET_RSS_MIB = 600
TARGET_FLAT = 1.3
BACKENDS = ("onnx", "torch")
OPTS = ("--patch-size", "512", "--overlap", "64", "--batch-size", "4", "--blend", "hann",
        "--device", "cpu")


def pure_forward_seconds(src, ckpt, backend: str, repeats: int) -> tuple[float, int]:
    """Best time of the engine alone over the raster's windows (read beforehand)."""
    engine = open_engine(ckpt, backend, "cpu")
    opts = PredictOptions(patch_px=512, overlap_px=64, batch_size=4)
    with open_raster(src) as ds:
        grid = patch_grid(ds.height, ds.width, engine, opts)
        batches = [b.images for b in iter_batches(StripReader(ds, [1, 2, 3], grid), grid,
                                                  engine.card, 4)]
    engine.forward(batches[0][:1])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for b in batches:
            engine.forward(b)
        best = min(best, time.perf_counter() - t)
    return best, len(grid)


def predict(src, ckpt, backend: str, *extra: str) -> tuple[float, float]:
    out = OUT / f"backend_{backend}_{os.path.basename(src)}"
    return peak_rss_mb(agriseg_cmd("predict", src, "-m", ckpt, "-o", out, "--overwrite",
                                   "--backend", backend, *OPTS, *extra))


def half_pixel_copy(src, dst):
    """``src`` enlarged 2x with GDAL: the same field at half the model's pixel size."""
    if dst.exists():
        return dst
    with rasterio.open(src) as ds:
        profile = ds.profile
        data = ds.read(out_shape=(ds.count, 2 * ds.height, 2 * ds.width),
                       resampling=Resampling.bilinear)
        profile.update(width=2 * ds.width, height=2 * ds.height,
                       transform=ds.transform * Affine.scale(0.5))
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return dst


def run(size: int = 4096, big: int = 16384, repeats: int = 2) -> dict:
    os.environ.setdefault("AGRISEG_CACHE_DIR", str(OUT / "cache"))
    src, ckpt = field(size), checkpoint("deeplabv3plus", "resnet18")
    mpx = size * size / 1e6
    open_engine(ckpt, "onnx", "cpu")  # the export, once (cached like a user's first run)
    tile = OUT / "tile_256.tif"
    if not tile.exists():
        with rasterio.open(src) as ds:
            profile = dict(ds.profile, width=256, height=256,
                           transform=ds.window_transform(((0, 256), (0, 256))))
            data = ds.read(window=((0, 256), (0, 256)))
        with rasterio.open(tile, "w", **profile) as out:
            out.write(data)
    runs: dict[str, dict[str, list[float]]] = {b: {"wall": [], "rss": [], "start": []}
                                               for b in BACKENDS}
    for _ in range(repeats):  # alternating
        for b in BACKENDS:
            rss, wall = predict(src, ckpt, b)
            runs[b]["wall"].append(wall)
            runs[b]["rss"].append(rss)
            runs[b]["start"].append(predict(tile, ckpt, b)[1])
    results: dict = {"size": size, "model": "deeplabv3plus/resnet18", "patch": 512,
                     "overlap": 64, "batch": 4}
    for b in BACKENDS:
        pure, patches = pure_forward_seconds(src, ckpt, b, repeats)
        wall, rss = min(runs[b]["wall"]), min(runs[b]["rss"])
        eta = pure / wall
        results[b] = {"wall_s": round(wall, 2), "mpx_s": round(mpx / wall, 3),
                      "peak_rss_mib": round(rss), "forward_s": round(pure, 2),
                      "eta": round(eta, 3), "startup_s": round(min(runs[b]["start"]), 2),
                      "patches": patches, "runs_wall_s": [round(w, 2) for w in runs[b]["wall"]]}
        print(f"  {b:5s}: wall {wall:6.2f} s ({mpx / wall:.2f} Mpx/s), forward alone "
              f"{pure:6.2f} s, eta {eta:.3f}, peak RSS {rss:5.0f} MiB, "
              f"256^2 tile end to end {min(runs[b]['start']):.2f} s")
    o, t = results["onnx"], results["torch"]
    print(f"  onnx / torch: wall {o['wall_s'] / t['wall_s']:.3f}, "
          f"peak RSS {o['peak_rss_mib'] / t['peak_rss_mib']:.3f}")
    if big:
        rss_big, wall_big = predict(field(big), ckpt, "onnx")
        flat = rss_big / o["peak_rss_mib"]
        results["onnx_big"] = {"size": big, "wall_s": round(wall_big, 1),
                               "mpx_s": round(big * big / 1e6 / wall_big, 3),
                               "peak_rss_mib": round(rss_big), "rss_ratio": round(flat, 3)}
        print(f"  onnx {big}^2: {wall_big:.1f} s ({big * big / 1e6 / wall_big:.2f} Mpx/s), "
              f"peak RSS {rss_big:.0f} MiB, ratio to {size}^2 {flat:.3f} (target <= "
              f"{TARGET_FLAT})")
    half = half_pixel_copy(field(size // 2), OUT / f"field_{size // 2}_x2.tif")
    rss_rs, wall_rs = predict(half, ckpt, "onnx", "--resample", "auto")
    results["resample_x2"] = {"input_size": size, "model_grid": size // 2,
                              "wall_s": round(wall_rs, 2), "input_mpx_s": round(mpx / wall_rs, 3),
                              "peak_rss_mib": round(rss_rs)}
    print(f"  --resample auto, {size}^2 raster at half the model's pixel size: {wall_rs:.2f} s "
          f"({mpx / wall_rs:.2f} Mpx/s of input), peak RSS {rss_rs:.0f} MiB")
    checks = {"eta_onnx": o["eta"] >= TARGET_ETA, "eta_torch": t["eta"] >= TARGET_ETA,
              "rss_onnx": o["peak_rss_mib"] <= TARGET_RSS_MIB,
              "flat_onnx": results.get("onnx_big", {}).get("rss_ratio", 0) <= TARGET_FLAT}
    for name, ok in checks.items():
        print(f"  {name}: {'PASS' if ok else 'FAIL'}")
    results["targets"] = {"eta": TARGET_ETA, "peak_rss_mib": TARGET_RSS_MIB,
                          "flat_ratio": TARGET_FLAT}
    results["pass"] = checks
    return results


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--big", type=int, default=16384, help="0 skips the flatness run")
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    print(json.dumps(run(a.size, a.big, a.repeats), indent=2))
