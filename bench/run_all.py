"""``make bench``: every benchmark, one summary, results in bench/out/results.json."""

from __future__ import annotations

import json
import platform

import torch

from bench import bench_batch, bench_efficiency, bench_memory, bench_vectorize
from bench.common import OUT


def main() -> None:
    print(f"agriseg benchmarks on {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    print("[efficiency] model time / pipeline time, 4096^2 raster")
    eff = bench_efficiency.run()
    print("[memory] peak RSS of agriseg predict, 4096^2 vs 16384^2")
    mem = bench_memory.run()
    print("[vectorize] throughput vs whole-array shapes, memory 4096^2 vs 16384^2")
    vec = bench_vectorize.run()
    print("[batch] 8 rasters of 2048^2, default model: rasters/min and batch overhead")
    bat = bench_batch.run()
    results = {"efficiency": eff, "memory": mem, "vectorize": vec, "batch": bat}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results written to {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
