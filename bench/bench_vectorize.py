"""Vectorization: throughput against the whole-array baseline, and flat memory.

Throughput (Mpx/s) of ``vectorize_mask`` on a realistic 8192^2 crop/weed mask, measured in the
same run as the usual whole-array approach (read the mask, ``rasterio.features.shapes``, build a
GeoDataFrame, write a GeoPackage); target: at least as fast (ratio >= 1). agriseg also merges
seams, computes metric areas/perimeters and writes more attributes. Memory: peak RSS of
``agriseg vectorize`` at 16384^2 vs 4096^2; target <= 1.3 (16x the pixels and polygons).
"""

from __future__ import annotations

import argparse
import json
import time

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
from shapely.geometry import shape

from agriseg.vector.vectorize import vectorize_mask
from bench.common import OUT, agriseg_cmd, label_mask, peak_rss_mb

SPEED_TARGET = 1.0
MEMORY_TARGET = 1.3


def baseline(mask_path, dst) -> int:
    """Whole-array polygonization as most tools do it: everything in memory at once."""
    with rasterio.open(mask_path) as src:
        arr = src.read(1)
        crs, transform = src.crs, src.transform
    keep = (arr != 0) & (arr != 255)
    geoms, values = [], []
    for geom, value in rasterio.features.shapes(arr, mask=keep, transform=transform):
        geoms.append(shape(geom))
        values.append(int(value))
    gdf = gpd.GeoDataFrame({"class_id": np.array(values, dtype=np.int32)}, geometry=geoms,
                           crs=crs)
    gdf.to_file(dst, driver="GPKG", engine="pyogrio")
    return len(gdf)


def throughput(size: int = 8192, repeats: int = 2) -> dict:
    mask = label_mask(size)
    mpx = size * size / 1e6
    ours, base, n_ours, n_base = [], [], 0, 0
    for _ in range(repeats):
        t = time.perf_counter()
        n_ours = vectorize_mask(mask, OUT / "vec_ours.gpkg", overwrite=True).polygons
        ours.append(time.perf_counter() - t)
        (OUT / "vec_base.gpkg").unlink(missing_ok=True)
        t = time.perf_counter()
        n_base = baseline(mask, OUT / "vec_base.gpkg")
        base.append(time.perf_counter() - t)
    ours_mpx, base_mpx = mpx / min(ours), mpx / min(base)
    ratio = ours_mpx / base_mpx
    print(f"  {size}^2 mask: agriseg {ours_mpx:.2f} Mpx/s ({n_ours} polygons, best of "
          f"{[round(x, 1) for x in ours]} s), whole-array shapes+GPKG {base_mpx:.2f} Mpx/s "
          f"({n_base} polygons, {[round(x, 1) for x in base]} s)")
    print(f"vectorize speed ratio agriseg/baseline = {ratio:.3f} (target >= {SPEED_TARGET}) "
          f"{'PASS' if ratio >= SPEED_TARGET else 'FAIL'}")
    return {"size": size, "agriseg_mpx_s": round(ours_mpx, 3),
            "baseline_mpx_s": round(base_mpx, 3), "polygons": n_ours,
            "baseline_polygons": n_base, "ratio": round(ratio, 3), "target": SPEED_TARGET,
            "pass": ratio >= SPEED_TARGET}


def memory(sizes: tuple[int, int] = (4096, 16384)) -> dict:
    runs = {}
    for size in sizes:
        mask = label_mask(size)
        rss, wall = peak_rss_mb(agriseg_cmd("vectorize", mask, "-o", OUT / f"vec_{size}.gpkg",
                                            "--overwrite"))
        runs[size] = {"peak_rss_mb": round(rss, 1), "wall_s": round(wall, 1),
                      "mpx_s": round(size * size / 1e6 / wall, 2)}
        print(f"  agriseg vectorize {size}^2: peak RSS {rss:.0f} MiB, {wall:.1f} s")
    ratio = runs[sizes[1]]["peak_rss_mb"] / runs[sizes[0]]["peak_rss_mb"]
    print(f"vectorize memory ratio {sizes[1]}^2 / {sizes[0]}^2 = {ratio:.3f} "
          f"(target <= {MEMORY_TARGET}) {'PASS' if ratio <= MEMORY_TARGET else 'FAIL'}")
    return {"runs": runs, "ratio": round(ratio, 3), "target": MEMORY_TARGET,
            "pass": ratio <= MEMORY_TARGET}


def run() -> dict:
    return {"throughput": throughput(), "memory": memory()}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.parse_args()
    print(json.dumps(run(), indent=2))
