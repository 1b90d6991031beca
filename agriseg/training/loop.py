"""The training loop: windows in, a checkpoint with its model card out, resumable.

Each epoch trains on fresh random windows (deterministic from the seed and the epoch), then
scores the fixed validation windows; the best epoch by validation mIoU is kept as
``best.safetensors`` (an ordinary agriseg checkpoint: ``predict`` takes it as it is), the latest
as ``last.safetensors`` with ``last.state.safetensors`` (optimizer, scheduler, RNG) beside it
for ``--resume``. Per-epoch metrics go to ``metrics.csv`` and ``metrics.json``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from agriseg.constants import NODATA
from agriseg.infer.devices import resolve_device
from agriseg.metrics import ConfusionMatrix
from agriseg.models.card import ModelCard
from agriseg.models.checkpoint import save_checkpoint
from agriseg.models.registry import create_model
from agriseg.raster.io import band_names, open_raster, pixel_size_m
from agriseg.training.augment import Augment
from agriseg.training.checks import image_bands
from agriseg.training.config import TrainConfig, save_config
from agriseg.training.data import (
    FixedWindows,
    WindowDataset,
    band_statistics,
    pair_samples,
    split_samples,
    validate_samples,
)
from agriseg.training.losses import SegmentationLoss, class_weights_from_counts
from agriseg.training.state import load_train_state, save_train_state

log = logging.getLogger("agriseg")


@dataclass
class TrainResult:
    best_checkpoint: Path
    last_checkpoint: Path
    epochs_run: int
    best_epoch: int
    best_miou: float
    history: list[dict[str, Any]]
    seconds: float


def seed_everything(seed: int) -> None:
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(False)


def train(cfg: TrainConfig, *, resume: bool = False, stop_after: int | None = None,
          progress: bool = False) -> TrainResult:
    """Train a model as ``cfg`` says; with ``resume``, continue from ``out_dir``'s last state.

    ``stop_after`` ends this run after that many epochs (a job with a time slot); a later
    ``resume`` carries on exactly where it stopped, as if never interrupted. Resuming with a
    changed config (e.g. more epochs) keeps the saved learning-rate schedule.
    """
    t0 = time.perf_counter()
    cfg.validate()
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    out = Path(cfg.out_dir)
    setup = _prepare(cfg)
    model = create_model(**{"arch": "deeplabv3plus", **cfg.arch},
                         encoder_weights=cfg.encoder_weights, in_channels=len(setup["bands"]),
                         classes=len(cfg.classes)).to(device)
    card = _card(cfg, setup)
    train_ds, val_ds = setup["train_ds"], setup["val_ds"]
    loader = torch.utils.data.DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=False,
                                         num_workers=cfg.num_workers, drop_last=True)
    steps = max(1, len(loader))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = _scheduler(cfg, optimizer, steps)
    loss_fn = SegmentationLoss(len(cfg.classes), ce_weight=cfg.loss.get("ce_weight", 1.0),
                               dice_weight=cfg.loss.get("dice_weight", 1.0),
                               class_weights=_class_weights(cfg, train_ds),
                               ignore_index=NODATA).to(device)
    amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    start, best, history = 0, {"miou": -1.0, "epoch": -1}, []
    if resume:
        info = load_train_state(out / "last.state.safetensors", optimizer, scheduler)
        _load_weights(model, out / "last.safetensors", device)
        start, best, history = info["epoch"] + 1, info["best"], info["history"]
    else:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        (out / "split.json").write_text(json.dumps(
            {"train": [str(s.image) for s in setup["train"]],
             "validation": [str(s.image) for s in setup["val"]]}, indent=2))
    since_best = 0 if not history else history[-1]["epoch"] - best["epoch"]
    end = cfg.epochs if stop_after is None else min(cfg.epochs, start + stop_after)
    for epoch in range(start, end):
        train_ds.set_epoch(epoch)
        loss = _train_epoch(model, loader, loss_fn, optimizer, scheduler, scaler, cfg, device,
                            amp, progress, epoch)
        metrics = _validate(model, val_ds, len(cfg.classes), device, amp, cfg.batch_size)
        row = {"epoch": epoch, "loss": loss, "lr": optimizer.param_groups[0]["lr"],
               "val_miou": metrics["miou"], "val_pixel_accuracy": metrics["pixel_accuracy"],
               **{f"val_iou_{c}": v for c, v in zip(cfg.classes, metrics["iou"], strict=True)}}
        history.append(row)
        log.info("epoch %d: loss %.4f, val mIoU %.4f", epoch, loss, metrics["miou"])
        if metrics["miou"] > best["miou"]:
            best, since_best = {"miou": metrics["miou"], "epoch": epoch}, 0
            save_checkpoint(out / "best.safetensors", model.cpu(), _with_metrics(card, row))
            model.to(device)
        else:
            since_best += 1
        save_checkpoint(out / "last.safetensors", model.cpu(), _with_metrics(card, row))
        model.to(device)
        save_train_state(out / "last.state.safetensors", optimizer, scheduler,
                         {"epoch": epoch, "best": best, "history": history})
        _write_history(out, history)
        if cfg.early_stopping and since_best >= cfg.early_stopping:
            log.info("no better validation mIoU for %d epochs: stopping", since_best)
            break
        if cfg.max_minutes and time.perf_counter() - t0 > 60 * cfg.max_minutes:
            log.info("time budget of %s min used: stopping after epoch %d", cfg.max_minutes,
                     epoch + 1)
            break
    return TrainResult(out / "best.safetensors", out / "last.safetensors", len(history),
                       best["epoch"], best["miou"], history, time.perf_counter() - t0)


def _prepare(cfg: TrainConfig) -> dict[str, Any]:
    """Samples, split, checks, bands, normalization and datasets — before any training."""
    samples = pair_samples(cfg.images, cfg.labels, label_field=cfg.label_field, aoi=cfg.aoi)
    train_s, val_s = split_samples(samples, val_fraction=cfg.val_fraction,
                                   val_images=cfg.val_images, seed=cfg.seed)
    with open_raster(train_s[0].image) as src:
        names = band_names(src)
        bands = list(cfg.bands or [names[i - 1] for i in image_bands(src, None)])
        dtype, pixel = src.dtypes[0], pixel_size_m(src)
    validate_samples(samples, bands=bands, num_classes=len(cfg.classes),
                     label_field=cfg.label_field, classes=cfg.classes)
    norm = band_statistics(train_s, bands, seed=cfg.seed)
    augment = Augment.from_config(cfg.augment)
    kw = dict(patch_px=cfg.patch_px, bands=bands, normalization=norm,
              num_classes=len(cfg.classes), classes=cfg.classes)
    train_ds = WindowDataset(train_s, length=cfg.windows_per_epoch, seed=cfg.seed,
                             class_balance=cfg.class_balance, augment=augment, **kw)
    val_ds = FixedWindows(val_s or train_s, **kw)
    return {"bands": bands, "dtype": dtype, "pixel": pixel, "norm": norm,
            "train_ds": train_ds, "val_ds": val_ds, "train": train_s, "val": val_s}


def _card(cfg: TrainConfig, setup: dict[str, Any]) -> ModelCard:
    colors = tuple(tuple(c) for c in cfg.colors) if cfg.colors else ()
    return ModelCard(arch={"arch": "deeplabv3plus", **cfg.arch}, bands=tuple(setup["bands"]),
                     classes=tuple(cfg.classes), normalization=setup["norm"],
                     dtype=setup["dtype"], colors=colors, patch_px=cfg.patch_px,
                     pixel_size_m=setup["pixel"], name=cfg.name, description=cfg.description)


def _with_metrics(card: ModelCard, row: dict[str, Any]) -> ModelCard:
    import dataclasses

    return dataclasses.replace(card, metrics={k: v for k, v in row.items() if k != "lr"})


def _scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps: int):
    total = cfg.epochs * steps
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def _class_weights(cfg: TrainConfig, train_ds) -> list[float] | None:
    weights = cfg.loss.get("class_weights")
    if weights in (None, "none"):
        return None
    if weights != "auto":
        return [float(w) for w in weights]
    counts = np.zeros(len(cfg.classes), dtype=np.int64)
    for i in range(min(len(train_ds), 64)):  # a sample of the epoch-0 windows is enough
        label = train_ds[i][1].numpy()
        counts += np.bincount(label[label != NODATA].ravel(), minlength=len(cfg.classes))
    return [float(w) for w in class_weights_from_counts(counts)]


def _train_epoch(model, loader, loss_fn, optimizer, scheduler, scaler, cfg, device, amp,
                 progress, epoch) -> float:
    model.train()
    total, n = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
               disable=not progress, file=sys.stderr, dynamic_ncols=True, leave=False)
    for image, label in bar:
        image, label = image.to(device), label.to(device)
        optimizer.zero_grad(set_to_none=True)
        ctx = torch.autocast("cuda", dtype=torch.float16) if amp else contextlib.nullcontext()
        with ctx:
            loss = loss_fn(model(image), label)
        scaler.scale(loss).backward()
        if cfg.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total += float(loss.detach())
        n += 1
        bar.set_postfix(loss=f"{total / n:.4f}")
    return total / max(n, 1)


@torch.inference_mode()
def _validate(model, val_ds, num_classes, device, amp, batch_size) -> dict[str, Any]:
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index=NODATA)
    loader = torch.utils.data.DataLoader(val_ds, batch_size=batch_size, shuffle=False)
    for image, label in loader:
        ctx = torch.autocast("cuda", dtype=torch.float16) if amp else contextlib.nullcontext()
        with ctx:
            pred = model(image.to(device)).argmax(1).cpu()
        cm.update(pred.numpy(), label.numpy())
    return cm.compute()


def _load_weights(model, path: Path, device) -> None:
    from safetensors.torch import load_model

    load_model(model, str(path), strict=True, device=str(device))


def _write_history(out: Path, history: list[dict[str, Any]]) -> None:
    (out / "metrics.json").write_text(json.dumps(history, indent=2))
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
