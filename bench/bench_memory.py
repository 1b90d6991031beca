"""Memory: peak RSS of ``agriseg predict`` (PyTorch backend; the ONNX backend's is in
bench_backends) must not grow with the raster's size.

A 16384^2 raster has 16x the pixels of a 4096^2 one; with strip streaming the peak resident
memory should stay about the same (target ratio <= 1.3). Each run is a fresh process so the
numbers are that process's own peak.
"""

from __future__ import annotations

import argparse
import json

from bench.common import OUT, agriseg_cmd, checkpoint, field, peak_rss_mb

TARGET = 1.3


def run(sizes: tuple[int, int] = (4096, 16384), arch: str = "pspnet",
        encoder: str = "resnet18") -> dict:
    ckpt = checkpoint(arch, encoder)
    results = {}
    for size in sizes:
        src = field(size)
        out = OUT / f"mask_{size}.tif"
        rss, wall = peak_rss_mb(agriseg_cmd("predict", src, "-m", ckpt, "-o", out,
                                            "--overwrite", "--device", "cpu", "--backend",
                                            "torch"))
        results[size] = {"peak_rss_mb": round(rss, 1), "wall_s": round(wall, 1)}
        print(f"  predict {size}x{size}: peak RSS {rss:.0f} MiB, {wall:.1f} s")
    small, big = (results[s]["peak_rss_mb"] for s in sizes)
    ratio = big / small
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"memory ratio {sizes[1]}^2 / {sizes[0]}^2 = {ratio:.3f} (target <= {TARGET}) "
          f"{verdict}")
    return {"model": f"{arch}/{encoder}", "runs": results, "ratio": round(ratio, 3),
            "target": TARGET, "pass": ratio <= TARGET}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs=2, default=(4096, 16384))
    p.add_argument("--arch", default="pspnet")
    a = p.parse_args()
    print(json.dumps(run(tuple(a.sizes), a.arch), indent=2))
