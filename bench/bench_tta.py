"""Test-time augmentation: mIoU, calibration and time of ``evaluate`` for ``--tta none``,
``flips`` and ``d4`` on the Carrot-Weed rasters, in one process.

Each level scores the same images with the same engine (the default model's cached ONNX
export unless ``--model``/``--backend`` say otherwise); the levels alternate and the best of
``--repeats`` wall times counts, so the time ratios to ``none`` are measured under the same
load. ``--resample off`` reads the 1 mm rasters at full resolution (48 patches of 256 px
each instead of one), where the forward passes dominate the time. Not part of ``make bench``:
it needs the shared data set. Results: ``bench/out/tta[_<tag>].json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agriseg.infer.engines import open_engine
from agriseg.jobs.evaluate import evaluate_model
from agriseg.training.setup import read_split
from bench.common import OUT, in_data

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "carrot-weed"
LEVELS = ("none", "flips", "d4")


def run(data: Path = DATA, limit: int | None = None, repeats: int = 2, resample: str = "auto",
        backend: str = "auto", model: str | None = None, split: Path | None = None) -> dict:
    images = sorted(p for p in data.glob("IMG_*.tif") if not p.stem.endswith("_labels"))
    if split is not None:  # a training run's held-out images: score a model on unseen fields
        held_out = read_split(split)["validation"]
        images = in_data(data, held_out, "bench_tta",
                         f"the split's {len(held_out)} validation images")
    images = images[:limit] if limit else images
    engine = open_engine(model, backend, "cpu")  # exported and loaded once, outside the timing
    best: dict[str, float] = {}
    scores: dict[str, dict] = {}
    for _ in range(repeats):
        for level in LEVELS:
            t = time.perf_counter()
            r = evaluate_model(images, data, model=engine, tta=level, resample=resample)
            best[level] = min(best.get(level, float("inf")), time.perf_counter() - t)
            scores[level] = r["overall"]
    base = scores["none"]["miou"]
    return {
        "images": [p.name for p in images], "resample": resample, "backend": engine.backend,
        "model": str(engine.model_path), "repeats": repeats,
        "levels": {lv: {"miou": scores[lv]["miou"], "miou_gain": scores[lv]["miou"] - base,
                        "iou": scores[lv]["iou"], "pixel_accuracy": scores[lv]["pixel_accuracy"],
                        "ece": scores[lv]["ece"], "seconds": best[lv],
                        "time_ratio_to_none": best[lv] / best["none"]} for lv in LEVELS},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--limit", type=int, default=None, help="first N images only")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--resample", default="auto", choices=("auto", "off"))
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--model", default=None)
    ap.add_argument("--split", type=Path, default=None,
                    help="a run's split.json: score only its validation images")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    result = run(a.data, a.limit, a.repeats, a.resample, a.backend, a.model, a.split)
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"tta{'_' + a.tag if a.tag else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for lv, r in result["levels"].items():
        print(f"{lv:>5}: mIoU {r['miou']:.4f} ({r['miou_gain']:+.4f})  ECE {r['ece']:.4f}  "
              f"{r['seconds']:.2f} s  x{r['time_ratio_to_none']:.2f}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
