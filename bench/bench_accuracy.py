"""Recipe study on Carrot-Weed: each recipe variant cross-validated at the same time budget.

Every variant starts from the shipped real-field recipe (``configs/train/carrot-weed.yaml``)
and changes one thing: the encoder, the architecture, the window size, the loss, the class
weights, class-balanced sampling or the schedule. Each is trained with
:func:`agriseg.cross_validate` (``--folds`` image-level folds, the same folds for every
variant) under ``--budget`` minutes per fold (the budget chooses the epochs so the schedule
ends on time), and each fold's last checkpoint is scored on its held-out images whole, as
``agriseg evaluate`` does. A recipe is judged by its mean over folds.

Resumable: a variant whose ``cv.json`` exists is read back, and a fold that was stopped goes on
from its saved state, so ``make bench-accuracy`` can be stopped and started again.
``--fixed`` trains one variant on the recipe's fixed 30/9 split instead (the README's
number), and scores the same way. ``--report``, ``--errors``, ``--fit`` and ``--edges`` train
nothing: the table of what is done, where a cross-validated variant errs, how well each fold's
model fits its own training images against the images it never saw, and how many of the
held-out errors lie on label boundaries. Results: ``bench/out/accuracy/<budget>min/`` (one folder
per variant, ``results.json`` and ``results.md``, a table sorted by mean mIoU).

Not part of ``make bench``: it needs the shared data set and hours of CPU (3 folds x 45 min
per variant at the default budget). Fair only on an otherwise idle machine: the budget is
wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from bench.common import OUT, in_data

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "train" / "carrot-weed.yaml"
DATA = ROOT.parent / "shared" / "data" / "carrot-weed"

DLV3P = "deeplabv3plus"
MNV3L = "tu-mobilenetv3_large_100"

# name -> (what it changes, overrides of whole keys on top of the recipe)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "recipe": ("the shipped recipe: DeepLabV3+ / MobileNetV3-Large, 256 px, CE+Dice, auto "
               "class weights, class-balanced sampling 0.5, cosine", {}),
    "resnet18": ("encoder ResNet-18",
                 {"arch": {"arch": DLV3P, "encoder_name": "resnet18"}}),
    "resnet34": ("encoder ResNet-34",
                 {"arch": {"arch": DLV3P, "encoder_name": "resnet34"}}),
    "effb0": ("encoder EfficientNet-B0",
              {"arch": {"arch": DLV3P, "encoder_name": "tu-efficientnet_b0",
                        "decoder_channels": 128}}),
    "upernet": ("architecture UPerNet (PPM + FPN), MobileNetV3-Large",
                {"arch": {"arch": "upernet", "encoder_name": MNV3L}}),
    "sfnet": ("architecture SFNet (flow-aligned pyramid), the zoo's best after DeepLabV3+ "
              "(docs/models.md), MobileNetV3-Large",
              {"arch": {"arch": "sfnet", "encoder_name": MNV3L}}),
    # the held-out errors lie mostly within 1-2 px of a class boundary (docs/accuracy.md),
    # where DeepLabV3+'s stride-4 output is upsampled; U-Net decodes up to full resolution.
    # Decoder channels sized so a training step costs what the recipe's does on the CPU
    "unet": ("architecture U-Net (decoder up to full resolution, channels 96/48/24/16/8), "
             "MobileNetV3-Large",
             {"arch": {"arch": "unet", "encoder_name": MNV3L,
                       "decoder_channels": [96, 48, 24, 16, 8]}}),
    "window384": ("384 px windows (batch 4: about the same pixels per step)",
                  {"patch_px": 384, "batch_size": 4}),
    "window512": ("512 px windows (batch 2)", {"patch_px": 512, "batch_size": 2}),
    "ce": ("cross-entropy only (no Dice), auto class weights",
           {"loss": {"ce_weight": 1.0, "dice_weight": 0.0, "class_weights": "auto"}}),
    "noweights": ("CE+Dice without class weights",
                  {"loss": {"ce_weight": 1.0, "dice_weight": 1.0, "class_weights": None}}),
    "nobalance": ("no class-balanced sampling (windows drawn uniformly)",
                  {"class_balance": 0.0}),
    "onecycle": ("one-cycle schedule instead of cosine", {"schedule": "onecycle"}),
    # a candidate, not a single change: the 4-min screening's leader, plus validating every
    # 5th epoch, which a cross-validation does not need each epoch (it scores the last
    # checkpoint), so the budget buys more epochs
    "nobalance_val5": ("no class-balanced sampling, and validation every 5th epoch "
                       "(more epochs in the same budget)",
                       {"class_balance": 0.0, "val_every": 5}),
}


def _overrides(data: Path, budget: float, folds: int | None,
               changes: dict[str, Any]) -> dict[str, Any]:
    return {"images": str(data / "IMG_????.tif"), "labels": str(data), "max_minutes": None,
            "budget_minutes": budget * (folds or 1), **changes}


def run_variant(name: str, data: Path, root: Path, budget: float, folds: int,
                fixed: bool = False) -> dict[str, Any]:
    """Cross-validate (or, ``fixed``, train on the fixed split) one variant; its result,
    read back when it was already done."""
    from agriseg import cross_validate
    from agriseg.jobs.evaluate import evaluate_model
    from agriseg.training.loop import train
    from agriseg.training.setup import read_split

    what, changes = VARIANTS[name]
    out = root / (f"fixed-{name}" if fixed else name)
    done = out / ("fixed.json" if fixed else "cv.json")
    if done.is_file():
        print(f"{name}: done before ({done})", file=sys.stderr)
        return json.loads(done.read_text())
    t = time.perf_counter()
    if not fixed:
        r = cross_validate(RECIPE, out, folds=folds, resume=True,
                           **_overrides(data, budget, folds, changes))
    else:
        resume = (out / "last.state.safetensors").is_file()
        tr = train(RECIPE, resume=resume, out_dir=str(out),
                   **_overrides(data, budget, None, changes))
        val = read_split(out / "split.json")["validation"]
        ev = evaluate_model(val, data, model=tr.last_checkpoint, out_json=out / "evaluation.json",
                            overwrite=True)
        o = ev["overall"]
        r = {"fixed_split": True, "validation": [str(p) for p in val],
             "epochs_run": tr.epochs_run, "miou": o["miou"], "ece": o["ece"],
             "iou": dict(zip(ev["classes"], o["iou"], strict=True))}
    r = {**r, "variant": name, "changes": what, "overrides": changes,
         "budget_minutes_per_fold": budget, "wall_seconds": time.perf_counter() - t}
    done.write_text(json.dumps(r, indent=2) + "\n")
    return r


def table(results: list[dict[str, Any]]) -> str:
    """The markdown table of cross-validated variants, best mean mIoU first."""
    from agriseg.crossval import format_mean_std as pm
    rows = sorted((r for r in results if "per_fold" in r),
                  key=lambda r: -(r["mean"]["miou"] or 0.0))
    if not rows:
        return ""
    classes = rows[0]["classes"]
    base = next((r for r in rows if r["variant"] == "recipe"), None)
    head = ["variant", "mIoU (mean ± std)", "Δ vs recipe, per fold",
            *(f"{c} IoU" for c in classes), "ECE", "epochs per fold", "min per fold",
            "what changes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        folds = r["per_fold"]
        eces = [f["ece"] for f in folds if f.get("ece") is not None]
        lines.append("| " + " | ".join([
            r["variant"], pm(r["mean"]["miou"], r["std"]["miou"]), _paired(r, base),
            *(pm(r["mean"]["iou"][c], r["std"]["iou"][c]) for c in classes),
            f"{statistics.mean(eces):.4f}" if eces else "-",
            "/".join(str(f["epochs_run"]) for f in folds),
            f"{r['wall_seconds'] / 60 / len(folds):.1f}", r["changes"]]) + " |")
    return "\n".join(lines)


def _paired(r: dict[str, Any], base: dict[str, Any] | None) -> str:
    """The mIoU difference to the recipe fold by fold (the folds are the same images), so
    the spread between folds, which both share, does not hide a consistent gain."""
    if base is None or r is base or len(base["per_fold"]) != len(r["per_fold"]):
        return ""
    d = [a["miou"] - b["miou"] for a, b in zip(r["per_fold"], base["per_fold"], strict=True)]
    return f"{statistics.mean(d):+.4f} ({' '.join(f'{x:+.3f}' for x in d)})"


def errors(variant_dir: Path, worst: int = 10) -> str:
    """Where a cross-validated variant errs: its held-out images pooled over the folds (each
    image is held out by exactly one fold), as a truth -> prediction table of pixel shares,
    and its ``worst`` images by mIoU, with each class's share of the labelled pixels."""
    from agriseg.metrics import ConfusionMatrix

    rows: list[tuple[str, int, dict[str, Any]]] = []
    classes: list[str] = []
    for ev_path in sorted(variant_dir.glob("fold-*/evaluation.json")):
        ev = json.loads(ev_path.read_text())
        classes = ev["classes"]
        fold = int(ev_path.parent.name.removeprefix("fold-"))
        rows += [(Path(r["image"]).stem, fold, r) for r in ev["per_image"]]
    if not rows:
        return f"no fold-*/evaluation.json in {variant_dir}"
    pooled = ConfusionMatrix(len(classes))
    for _, _, r in rows:
        pooled.matrix += np.asarray(r["confusion"], dtype=np.int64)
    m = pooled.compute()
    conf = pooled.matrix / np.maximum(pooled.matrix.sum(axis=1, keepdims=True), 1)
    out = [f"{variant_dir.name}: {len(rows)} held-out images pooled, mIoU {m['miou']:.4f} "
           f"(IoU {', '.join(f'{c} {v:.4f}' for c, v in zip(classes, m['iou'], strict=True))})",
           "", "| truth → predicted | " + " | ".join(classes) + " |",
           "|---|" + "---|" * len(classes)]
    out += [f"| {c} | " + " | ".join(f"{100 * v:.1f}%" for v in conf[i]) + " |"
            for i, c in enumerate(classes)]
    out += ["", f"The {min(worst, len(rows))} worst images by mIoU:", "",
            "| image | fold | mIoU | " + " | ".join(f"{c} IoU" for c in classes) + " | "
            + " | ".join(f"{c} share" for c in classes) + " |",
            "|" + "---|" * (3 + 2 * len(classes))]
    for stem, fold, r in sorted(rows, key=lambda x: x[2]["miou"])[:worst]:
        total = sum(r["support"]) or 1
        out.append(f"| {stem} | {fold} | {r['miou']:.3f} | "
                   + " | ".join("-" if v is None else f"{v:.3f}" for v in r["iou"]) + " | "
                   + " | ".join(f"{100 * s / total:.1f}%" for s in r["support"]) + " |")
    return "\n".join(out)


def fit(variant_dir: Path, data: Path) -> str:
    """How well each fold's last model fits the images it trained on, against the images it
    never saw: a small gap says the recipe is short of fitting (time, capacity); a large one,
    of data. Each fold's score on its training images is kept in ``fold-i/fit.json`` and read
    back when there (resumable); the held-out score is the fold's ``evaluation.json``."""
    from agriseg.jobs.evaluate import evaluate_model

    cv = json.loads((variant_dir / "cv.json").read_text())
    classes = cv["classes"]
    head = ["fold", "images (train/held out)", "mIoU train", "mIoU held out", "gap"]
    head += [f"{c} IoU train / held out" for c in classes]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    gaps = []
    for f in cv["per_fold"]:
        fold_dir = variant_dir / f"fold-{f['fold']}"
        done = fold_dir / "fit.json"
        if done.is_file():
            ev = json.loads(done.read_text())
        else:
            train_images = in_data(data, f["train"], "bench_accuracy",
                                   f"fold {f['fold']}'s {len(f['train'])} training images")
            ev = evaluate_model(train_images, data, model=fold_dir / "last.safetensors",
                                out_json=done, overwrite=True)
        held = json.loads((fold_dir / "evaluation.json").read_text())["overall"]
        tr = ev["overall"]
        gaps.append(tr["miou"] - held["miou"])
        out.append(f"| {f['fold']} | {len(ev['per_image'])}/{len(f['validation'])} | "
                   f"{tr['miou']:.4f} | {held['miou']:.4f} | {gaps[-1]:+.4f} | "
                   + " | ".join(f"{a:.4f} / {b:.4f}"
                                for a, b in zip(tr["iou"], held["iou"], strict=True)) + " |")
    out.append(f"\n{variant_dir.name}: mean gap train - held out {statistics.mean(gaps):+.4f} "
               f"mIoU over {len(gaps)} folds")
    return "\n".join(out)


def _boundary_band(labels: np.ndarray, valid: np.ndarray, r: int) -> np.ndarray:
    """Labelled pixels within ``r`` px (Chebyshev) of a class boundary: their (2r+1)^2
    window of the labels holds more than one class (no-data counts as a class of its own)."""
    from scipy import ndimage

    size = 2 * r + 1
    return valid & (ndimage.maximum_filter(labels, size) != ndimage.minimum_filter(labels, size))


def edges(variant_dir: Path, data: Path, radii: tuple[int, ...] = (1, 2, 3)) -> str:
    """Where a cross-validated variant's held-out errors lie: within ``radii`` px of a class
    boundary of the labels, or inside objects. Each image is predicted whole by the fold model
    that never saw it (kept in ``fold-i/predictions/``, read back when there), and scored with
    and without the boundary band. Beside it, the labels cleaned by a majority filter scored
    against themselves: what a model that draws clean shapes loses to the labels' own
    ragged edges at best, i.e. how far the labels let a score go."""
    from scipy import ndimage

    import agriseg
    from agriseg.constants import NODATA
    from agriseg.metrics import ConfusionMatrix

    cv = json.loads((variant_dir / "cv.json").read_text())
    classes = cv["classes"]
    k = len(classes)
    whole = ConfusionMatrix(k)
    core = {r: ConfusionMatrix(k) for r in radii}  # the pixels outside the band
    clean = {r: ConfusionMatrix(k) for r in radii}  # majority-filtered labels vs the labels
    band_px = dict.fromkeys(radii, 0)
    band_err = dict.fromkeys(radii, 0)
    for f in cv["per_fold"]:
        fold_dir = variant_dir / f"fold-{f['fold']}"
        held_out = in_data(data, f["validation"], "bench_accuracy",
                           f"fold {f['fold']}'s {len(f['validation'])} held-out images")
        in_data(data, [f"{p.stem}_labels.tif" for p in held_out], "bench_accuracy",
                f"fold {f['fold']}'s {len(held_out)} label rasters")
        for image in held_out:
            label_path = image.with_name(f"{image.stem}_labels.tif")
            pred_path = fold_dir / "predictions" / f"{image.stem}.tif"
            if not pred_path.is_file():
                pred_path.parent.mkdir(exist_ok=True)
                agriseg.predict(image, pred_path, model=fold_dir / "last.safetensors")
            with rasterio.open(pred_path) as src:
                pred = src.read(1)
            with rasterio.open(label_path) as src:
                labels = src.read(1)
            if pred.shape != labels.shape:
                raise SystemExit(f"bench_accuracy: {label_path.name} is {labels.shape}, not on "
                                 f"the image's grid {pred.shape}")
            valid = labels != NODATA
            err = valid & (pred != labels)
            whole.update(pred, labels)
            onehot = np.stack([(labels == c).astype(np.float32) for c in range(k)])
            for r in radii:
                band = _boundary_band(labels, valid, r)
                band_px[r] += int(band.sum())
                band_err[r] += int((err & band).sum())
                core[r].update(pred, np.where(band, NODATA, labels))
                majority = np.stack([ndimage.uniform_filter(c, 2 * r + 1)
                                     for c in onehot]).argmax(0)
                clean[r].update(majority, labels)
    n_px = int(whole.matrix.sum())
    n_err = n_px - int(np.trace(whole.matrix))
    top = whole.compute()
    per_class = " | ".join(f"{c} IoU" for c in classes)
    out = [f"{variant_dir.name}: {n_err} of {n_px} held-out labelled pixels wrong "
           f"({100 * n_err / max(n_px, 1):.2f}%)", "",
           "| pixels scored | share of labelled pixels | share of the errors | mIoU | "
           + per_class + " |", "|" + "---|" * (4 + k),
           f"| all | 100% | 100% | {top['miou']:.4f} | "
           + " | ".join(f"{v:.4f}" for v in top["iou"]) + " |"]
    for r in radii:
        c = core[r].compute()
        out.append(f"| farther than {r} px from a label boundary | "
                   f"{100 * (1 - band_px[r] / max(n_px, 1)):.1f}% | "
                   f"{100 * (1 - band_err[r] / max(n_err, 1)):.1f}% | {c['miou']:.4f} | "
                   + " | ".join(f"{x:.4f}" for x in c["iou"]) + " |")
    out += ["", "The labels against themselves cleaned by a majority filter (all pixels):", "",
            "| filter | mIoU | " + per_class + " |", "|" + "---|" * (2 + k)]
    for r in radii:
        c = clean[r].compute()
        out.append(f"| {2 * r + 1}x{2 * r + 1} | {c['miou']:.4f} | "
                   + " | ".join(f"{x:.4f}" for x in c["iou"]) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--budget", type=float, default=45.0, help="minutes per fold (default 45)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"comma-separated, from: {', '.join(VARIANTS)}")
    ap.add_argument("--fixed", action="store_true",
                    help="train the variants on the recipe's fixed 30/9 split instead")
    ap.add_argument("--out", type=Path, default=OUT / "accuracy")
    only = ap.add_mutually_exclusive_group()  # the modes that train nothing: one at a time
    only.add_argument("--report", action="store_true",
                      help="train nothing: tabulate the variants already done")
    only.add_argument("--errors", action="store_true",
                      help="train nothing: where each variant done errs, pooled over its folds "
                           "(written to <variant>/errors.md)")
    only.add_argument("--edges", action="store_true",
                      help="train nothing: how many of each variant's held-out errors lie on "
                           "label boundaries (written to <variant>/edges.md; needs --data)")
    only.add_argument("--fit", action="store_true",
                      help="train nothing: score each fold's model on its own training images "
                           "against its held-out ones (written to <variant>/fit.md; needs --data)")
    a = ap.parse_args(argv)
    names = [n.strip() for n in a.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"bench_accuracy: unknown variants {unknown}; known: {list(VARIANTS)}",
              file=sys.stderr)
        return 2
    if not (a.report or a.errors) and not sorted(a.data.glob("IMG_*.tif")):  # to train or score
        print(f"bench_accuracy: no Carrot-Weed images in {a.data}; skipped", file=sys.stderr)
        return 0
    root = a.out / f"{a.budget:g}min"
    reads = {"errors": lambda d: errors(d), "fit": lambda d: fit(d, a.data),
             "edges": lambda d: edges(d, a.data)}  # modes that read a cross-validation
    mode = next((m for m in reads if getattr(a, m)), None)
    if mode:  # creates no folder
        for name in names:
            if not (root / name / "cv.json").is_file():
                print(f"{name}: not cross-validated at {a.budget:g} min in {root}",
                      file=sys.stderr)
                continue
            text = reads[mode](root / name)
            (root / name / f"{mode}.md").write_text(text + "\n")
            print(text + "\n", flush=True)
        return 0
    root.mkdir(parents=True, exist_ok=True)
    for name in [] if a.report else names:
        r = run_variant(name, a.data, root, a.budget, a.folds, fixed=a.fixed)
        score = r["mean"]["miou"] if "mean" in r else r["miou"]
        print(f"{name}: mIoU {score:.4f}" if score is not None and not math.isnan(score)
              else f"{name}: no score", flush=True)
    done = [json.loads(p.read_text()) for p in sorted(root.glob("*/cv.json"))]
    (root / "results.json").write_text(json.dumps(done, indent=2) + "\n")
    md = table([{**r, "variant": r.get("variant", "?")} for r in done])
    (root / "results.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
