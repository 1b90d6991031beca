"""``make bench-models``: every registered architecture, measured the same way; writes
docs/models.md.

For each architecture (RGB, 3 classes, its default options, encoder resnet18 unless it brings
its own backbone): parameters; GFLOPs of one 512^2 forward pass (torch's FLOP counter: 2 per
multiply-add); CPU latency per 512^2 patch at batch 1 and batch 8 (inference mode, median of
``repeats`` after a warm-up); and, unless ``--no-train``, validation mIoU on Carrot-Weed's fixed
9-image validation split after the same short schedule for every architecture (the
configs/train/carrot-weed.yaml recipe with ``--epochs``, ``--windows`` and ``--minutes``
overriding its budget, stated in the table), with the training wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from agriseg.models.registry import ARCHITECTURES, model_from_config
from bench.common import OUT

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "models.md"
RECIPE = ROOT / "configs" / "train" / "carrot-weed.yaml"
MODEL_CONFIGS = ROOT / "configs" / "models"


def encoder_for(arch: str) -> str:
    """resnet18, or the architecture's own backbone (STDC)."""
    return ARCHITECTURES[arch].default_encoder or "resnet18"


def arch_config(arch: str) -> dict:
    """configs/models/<arch>.yaml where agriseg builds the architecture itself (its documented
    options), else smp's defaults on resnet18."""
    path = MODEL_CONFIGS / f"{arch}.yaml"
    if path.is_file():
        return dict(yaml.safe_load(path.read_text())["arch"])
    return {"arch": arch, "encoder_name": encoder_for(arch)}


def build(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return model_from_config(arch_config(arch), in_channels=3, classes=3).eval()


def gflops(model: torch.nn.Module, side: int = 512) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():  # torch 2.3 counts nothing under inference_mode
        model(torch.zeros(1, 3, side, side))
    return counter.get_total_flops() / 1e9


def latency_ms(model: torch.nn.Module, batch: int, side: int = 512, repeats: int = 3) -> float:
    x = torch.randn(batch, 3, side, side)
    with torch.inference_mode():
        model(x[:1])
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times) / batch


def train_score(arch: str, epochs: int, windows: int, minutes: float, growable: bool) -> dict:
    from agriseg.training.loop import train

    out = OUT / "models" / arch
    t = time.perf_counter()
    result = train(str(RECIPE), arch=arch_config(arch),
                   epochs=epochs, windows_per_epoch=windows, max_minutes=minutes,
                   early_stopping=0, out_dir=str(out), name=f"bench-{arch}")
    row = {"val_miou": round(result.best_miou, 4), "train_s": round(time.perf_counter() - t),
           "epochs_run": len(result.history)}
    if growable:  # a network that grows in training (NEAT): how it grew, if it did
        row["growth"] = result.growth
        row["best_params_m"] = round(result.history[result.best_epoch]["params"] / 1e6, 2)
    return row


def run(archs: list[str], train: bool, epochs: int, windows: int, minutes: float,
        repeats: int) -> list[dict]:
    rows = []
    for arch in archs:
        model = build(arch)
        row = {"arch": arch, "encoder": arch_config(arch)["encoder_name"],
               "description": ARCHITECTURES[arch].description,
               "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
               "gflops_512": round(gflops(model), 1),
               "ms_per_patch_b1": round(latency_ms(model, 1, repeats=repeats)),
               "ms_per_patch_b8": round(latency_ms(model, 8, repeats=repeats))}
        if train:
            row.update(train_score(arch, epochs, windows, minutes, hasattr(model, "grow")))
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """``new`` measurements over ``old`` ones, per architecture (keys ``new`` lacks, such as a
    trained score when only latency was re-measured, are kept), in registry order."""
    by_arch = {r["arch"]: dict(r) for r in old}
    for r in new:
        by_arch.setdefault(r["arch"], {}).update(r)
    order = list(ARCHITECTURES)
    return sorted(by_arch.values(), key=lambda r: order.index(r["arch"])
                  if r["arch"] in order else len(order))


def write_doc(rows: list[dict]) -> None:
    budgets = sorted({r["budget"] for r in rows if "budget" in r})
    budget = "; ".join(budgets) if budgets else "no training (--no-train)"
    lines = [
        "# Architectures, measured",
        "",
        "Regenerate with `make bench-models` (bench/bench_models.py). RGB input, 3 classes,",
        "options from configs/models/<arch>.yaml for the architectures agriseg builds itself",
        "(smp's defaults otherwise), encoder resnet18 with random initialization (STDC: its own",
        "STDC1 backbone). CPU: "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}. Latency is per 512x512 patch (inference mode). mIoU: "
        f"Carrot-Weed's fixed 9-image validation split after {budget}, the same for all",
        "(a short schedule from random initialization, one seed: it shows how fast each learns,",
        "not where each ends up).",
        "",
        "| architecture | params (M) | GFLOPs @512 | ms/patch b1 | ms/patch b8 "
        "| val mIoU | training |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        miou = f"{r['val_miou']:.3f}" if "val_miou" in r else "-"
        wall = f"{r['train_s'] / 60:.1f} min" if "train_s" in r else "-"
        lines.append(f"| {r['arch']} | {r['params_m']} | {r['gflops_512']} | "
                     f"{r['ms_per_patch_b1']} | {r['ms_per_patch_b8']} | {miou} | {wall} |")
    for r in rows:
        if r.get("growth") == []:
            lines += ["", f"{r['arch']} did not grow in this schedule: its validation mIoU "
                      "improved every epoch, so no plateau of `grow_patience` epochs came."]
        elif "growth" in r:
            steps = ", ".join(f"{g['op']} before epoch {g['epoch'] + 1} (width "
                              f"{g['head_width']}, {g['head_blocks']} blocks)"
                              for g in r["growth"])
            lines += ["", f"{r['arch']} grew in training: {steps}; {r['best_params_m']} M "
                      "parameters at its best epoch (the table gives its starting size)."]
    lines += ["", "Descriptions: `agriseg models`."]
    DOC.write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--arch", nargs="*", default=None, help="default: every registered one")
    p.add_argument("--no-train", action="store_true", help="skip the Carrot-Weed training")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--windows", type=int, default=128, help="training windows per epoch")
    p.add_argument("--minutes", type=float, default=10.0, help="time limit per architecture")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--update", action="store_true",
                   help="merge into bench/out/models.json (e.g. re-measure latency with "
                        "--no-train and keep the trained scores) instead of replacing it")
    a = p.parse_args()
    archs = a.arch or [k for k in ARCHITECTURES if k != "pixel"]
    budget = (f"{a.epochs} epochs of {a.windows} windows (at most {a.minutes:g} min), the "
              "carrot-weed recipe otherwise")
    train = not a.no_train and Path(os.fspath(RECIPE)).is_file()
    rows = run(archs, train, a.epochs, a.windows, a.minutes, a.repeats)
    if train:
        for r in rows:
            r["budget"] = budget
    store = OUT / "models.json"
    if a.update and store.is_file():
        rows = merge(json.loads(store.read_text()), rows)
    OUT.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(rows, indent=2))
    write_doc(rows)
    print(f"wrote {DOC} and {OUT / 'models.json'}")


if __name__ == "__main__":
    main()
