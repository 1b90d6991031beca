"""Batch: rasters per minute and the batch overhead, local executor and Dask.

Eight generated 2048 x 2048 fields are mapped with the default model by ``run_batch`` with the
local executor (``--jobs 1`` and ``--jobs 2``) and on a Dask ``LocalCluster`` (``--workers 2``),
each into a fresh output root. The baseline is the sum of the per-raster ``map_field`` times in
this process with the model already loaded and warmed up: the work itself, without any start-up.
The batch overhead is batch wall time / that sum (target <= 1.10 for ``--jobs 1``); it holds
everything a batch adds: worker processes and their PyTorch import, model loading, planning,
completion records, reports and the index. For reference, the sum of one ``agriseg map``
process per raster (what a shell loop would cost) and a batch on an already running (warm)
Dask cluster are measured as well.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from agriseg.batch.run import run_batch
from agriseg.batch.task import tune_malloc
from agriseg.infer.engines import open_engine
from agriseg.jobs.fieldmap import map_field
from agriseg.sampledata.fields import make_field
from bench.common import OUT

TARGET = 1.10


def rasters(n: int, size: int) -> list[Path]:
    folder = OUT / f"batch_{size}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"field{i:02d}.tif"
        if not path.exists():
            make_field(path, width=size, height=size, seed=100 + i)
        paths.append(path)
    return paths


def map_seconds(paths: list[Path], work: Path) -> list[float]:
    """Each raster's ``map_field`` time in this process, the model loaded and warmed up, with
    the same allocator tuning the batch workers use (so both measure the same work)."""
    tune_malloc()
    model = open_engine(None)  # what the batch workers run: ONNX Runtime on the CPU if installed
    map_field(paths[0], work / "warmup", model=model, overwrite=True)
    times = []
    for p in paths:
        t = time.perf_counter()
        map_field(p, work / p.stem, model=model, overwrite=True)
        times.append(time.perf_counter() - t)
    return times


def cli_seconds(paths: list[Path], work: Path) -> float:
    t = time.perf_counter()
    for p in paths:
        subprocess.run([sys.executable, "-m", "agriseg", "-q", "map", str(p), "-o",
                        str(work / f"cli_{p.stem}"), "--overwrite"], check=True,
                       stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def batch_seconds(paths: list[Path], root: Path, **kw) -> float:
    shutil.rmtree(root, ignore_errors=True)
    t = time.perf_counter()
    result = run_batch(paths, root, **kw)
    seconds = time.perf_counter() - t
    assert result.counts["done"] == len(paths), result.rows
    return seconds


def warm_cluster(paths: list[Path], work: Path, base: float, masks: list[bytes]) -> dict:
    """``--scheduler`` on a cluster that is already up and has mapped before (workers keep
    PyTorch imported and the model loaded): what a long-running cluster costs per batch."""
    import distributed

    n = len(paths)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        batch_seconds(paths[:2], work / "dask_warmup", scheduler=cluster.scheduler_address)
        root = work / "dask2_warm"
        seconds = batch_seconds(paths, root, scheduler=cluster.scheduler_address)
    mine = [(root / p.stem / "mask.tif").read_bytes() for p in paths]
    print(f"  batch dask2 on a warm cluster (--scheduler): {seconds:.1f} s, "
          f"{60 * n / seconds:.1f} rasters/min, overhead {seconds / base:.3f}, "
          f"masks identical: {mine == masks}")
    return {"seconds": round(seconds, 2), "rasters_per_min": round(60 * n / seconds, 2),
            "overhead": round(seconds / base, 3), "same_masks": mine == masks}


def run(n: int = 8, size: int = 2048, with_cli: bool = True) -> dict:
    paths = rasters(n, size)
    work = OUT / "batch_work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    per_raster = map_seconds(paths, work)
    base = sum(per_raster)
    res = {"rasters": n, "size": size, "map_sum_s": round(base, 2),
           "map_per_raster_s": round(base / n, 3)}
    print(f"  map_field per raster (in-process, warm): {base / n:.2f} s, sum {base:.1f} s")
    if with_cli:
        cli = cli_seconds(paths, work)
        res["cli_map_sum_s"] = round(cli, 2)
        print(f"  one 'agriseg map' process per raster: {cli:.1f} s "
              f"({60 * n / cli:.1f} rasters/min)")
    masks = None
    for name, kw in (("jobs1", {"jobs": 1}), ("jobs2", {"jobs": 2}),
                     ("dask2", {"workers": 2})):
        root = work / name
        seconds = batch_seconds(paths, root, **kw)
        mine = [(root / p.stem / "mask.tif").read_bytes() for p in paths]
        masks = masks or mine
        own = sum(json.loads((root / p.stem / "summary.json").read_text())["timings_s"]["total"]
                  for p in paths)
        res[name] = {"seconds": round(seconds, 2), "rasters_per_min": round(60 * n / seconds, 2),
                     "map_sum_in_batch_s": round(own, 2),
                     "overhead_vs_own_maps": round(seconds / own, 3),
                     "overhead": round(seconds / base, 3), "same_masks": mine == masks}
        print(f"  batch {name}: {seconds:.1f} s, {60 * n / seconds:.1f} rasters/min, "
              f"overhead {seconds / base:.3f} (vs its own maps' times, sum {own:.1f} s: "
              f"{seconds / own:.3f}), masks identical: {mine == masks}")
    res["dask2_warm"] = warm_cluster(paths, work, base, masks)
    res["target_overhead_jobs1"] = TARGET
    res["pass"] = res["jobs1"]["overhead"] <= TARGET and all(
        res[k]["same_masks"] for k in ("jobs1", "jobs2", "dask2", "dask2_warm"))
    print(f"  jobs1 overhead {res['jobs1']['overhead']:.3f} (target <= {TARGET}): "
          f"{'PASS' if res['pass'] else 'FAIL'}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rasters", type=int, default=8)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--no-cli", action="store_true", help="skip the per-raster CLI baseline")
    args = ap.parse_args()
    print(json.dumps(run(args.rasters, args.size, not args.no_cli), indent=2))


if __name__ == "__main__":
    main()
