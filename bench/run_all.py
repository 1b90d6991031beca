"""``make bench``: every benchmark, one summary, results in bench/out/results.json."""

from __future__ import annotations

import json
import platform

import torch

from bench import bench_backends, bench_batch, bench_efficiency, bench_memory, bench_vectorize
from bench.common import OUT


def main() -> None:
    print(f"agriseg benchmarks on {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    print("[efficiency] model time / pipeline time, 4096^2 raster")
    eff = bench_efficiency.run()
    print("[memory] peak RSS of agriseg predict (PyTorch), 4096^2 vs 16384^2")
    mem = bench_memory.run()
    print("[backends] whole agriseg predict processes, ONNX Runtime and PyTorch, 4096^2: eta, "
          "peak RSS, start-up; ONNX at 16384^2; --resample auto on a 2x raster")
    backends = bench_backends.run()
    print("[vectorize] throughput vs whole-array shapes, memory 4096^2 vs 16384^2")
    vec = bench_vectorize.run()
    print("[batch] 8 rasters of 2048^2, default model: rasters/min and batch overhead")
    bat = bench_batch.run()
    results = {"efficiency": eff, "memory": mem, "backends": backends, "vectorize": vec,
               "batch": bat}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results written to {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
