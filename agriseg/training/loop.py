"""The training loop: windows in, a checkpoint with its model card out, resumable.

Each epoch trains on fresh random windows (deterministic from the seed and the epoch), then
scores the fixed validation windows; the best epoch by validation mIoU is kept as
``best.safetensors`` (an ordinary agriseg checkpoint: ``predict`` takes it as it is), the latest
as ``last.safetensors`` with ``last.state.safetensors`` (optimizer, scheduler, every RNG) beside
it for ``--resume``. Per-epoch metrics go to ``metrics.csv`` and ``metrics.json``.

A network that can grow (a ``grow(step, seed)`` method and a ``grow_patience``, such as NEAT)
is grown at the start of an epoch when validation mIoU has not improved for ``grow_patience``
epochs and as many have passed since its last growth. The optimizer is rebuilt around the new
parameters (the unchanged ones keep their Adam moments) at the schedule's current position, and
the card's ``arch`` takes the grown shape, so checkpoints and ``--resume`` rebuild at that size.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from agriseg.constants import NODATA
from agriseg.infer.devices import resolve_device
from agriseg.metrics import ConfusionMatrix
from agriseg.models.checkpoint import save_checkpoint
from agriseg.models.header import read_card
from agriseg.models.registry import create_model
from agriseg.training.budget import BudgetPlan, fit_to_budget, read_plan, replan, write_plan
from agriseg.training.config import TrainConfig, resolve_config, save_config
from agriseg.training.losses import SegmentationLoss, class_weights_from_counts
from agriseg.training.rng import reproducible
from agriseg.training.setup import TrainSetup, prepare, with_metrics
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
    growth: list[dict[str, Any]] = field(default_factory=list)  # a growable network's steps
    budget: dict[str, Any] | None = None  # what a time budget measured and chose (budget.py)


@dataclass
class RunState:
    """Where a run stands after its last finished epoch; saved with the optimizer state."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_miou: float = -1.0
    best_epoch: int = -1
    growth: list[dict[str, Any]] = field(default_factory=list)  # each growth, with its epoch

    @property
    def next_epoch(self) -> int:
        return self.history[-1]["epoch"] + 1 if self.history else 0

    @property
    def since_best(self) -> int:
        """Epochs since the best one (0 when the last epoch was the best)."""
        return self.history[-1]["epoch"] - self.best_epoch if self.history else 0

    def record(self, row: dict[str, Any]) -> bool:
        """Add an epoch's metrics; True when it is the best so far (never for an epoch that
        was not validated, ``val_every``)."""
        self.history.append(row)
        if row["val_miou"] is not None and row["val_miou"] > self.best_miou:
            self.best_miou, self.best_epoch = row["val_miou"], row["epoch"]
            return True
        return False

    def info(self) -> dict[str, Any]:
        return {"epoch": self.next_epoch - 1, "history": self.history,
                "best": {"miou": self.best_miou, "epoch": self.best_epoch},
                "growth": self.growth}

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> RunState:
        return cls(history=list(info["history"]), best_miou=info["best"]["miou"],
                   best_epoch=info["best"]["epoch"], growth=list(info.get("growth", [])))

    def plateau(self, patience: int) -> bool:
        """No better validation mIoU for ``patience`` epochs, and ``patience`` epochs trained
        since the last growth."""
        if patience <= 0 or not self.history:
            return False
        since_growth = self.next_epoch - (self.growth[-1]["epoch"] if self.growth else 0)
        return self.since_best >= patience and since_growth >= patience


def train(config: TrainConfig | str | os.PathLike | dict[str, Any], *, resume: bool = False,
          stop_after: int | None = None, progress: bool = False,
          **overrides: Any) -> TrainResult:
    """Train a segmentation model on labelled rasters, as ``config`` says.

    Parameters
    ----------
    config
        A YAML file (relative paths in it are taken from its folder), a dict of config keys or
        a :class:`~agriseg.training.config.TrainConfig`; configs/train/ has examples.
    resume
        Continue the run in ``out_dir`` from its last state (weights, optimizer, schedule,
        RNGs), exactly as if it had never stopped. A changed config (e.g. more epochs) keeps
        the saved learning-rate schedule.
    stop_after
        End this call after that many epochs (a job with a time slot); resume later.
    progress
        Progress bars on stderr.
    **overrides
        Config keys replacing the config's (``epochs=5``, ``out_dir="runs/x"``,
        ``arch={"arch": "unet", "encoder_name": "resnet18"}``: whole values, not merged).

    Returns
    -------
    TrainResult
        Paths of ``best.safetensors`` and ``last.safetensors`` (ordinary agriseg checkpoints),
        epochs run, the best epoch and its validation mIoU, the per-epoch history, seconds,
        each growth of a growable network (epoch, ``op``, new shape, parameters), and with
        ``budget_minutes`` what the budget measured and chose (as in ``budget.json``).

    Raises
    ------
    AgrisegError
        A bad config key or value, or an input problem (missing labels, bands, class ids
        outside the class list...), always before training starts.
    """
    t0 = time.perf_counter()
    cfg = resolve_config(config, overrides)
    out = Path(cfg.out_dir)
    with reproducible(cfg.seed, cfg.deterministic):
        device = resolve_device(cfg.device)
        setup = prepare(cfg)
        trainer = Trainer(cfg, setup, device)
        plan = _budget(trainer, out, resume, t0) if cfg.budget_minutes else None
        t_budget = t0 - (plan.used_s if plan and resume else 0.0)  # a resumed run's clock
        cfg = trainer.cfg  # a budget chose the epochs (and turned early stopping off)
        state = trainer.load(out) if resume else _start(out, cfg, setup, plan)
        start, epoch_times, t_mark = state.next_epoch, [], time.perf_counter()
        epoch = start
        while epoch < (trainer.cfg.epochs if stop_after is None
                       else min(trainer.cfg.epochs, start + stop_after)):
            trainer.maybe_grow(state, epoch)
            row = trainer.run_epoch(epoch, progress)
            log.info("epoch %d: loss %.4f, val mIoU %s", epoch, row["loss"],
                     "-" if row["val_miou"] is None else f"{row['val_miou']:.4f}")
            epoch_times.append(time.perf_counter() - t_mark)  # with the last epoch's saving
            t_mark = time.perf_counter()
            if plan is not None:  # correct the plan by the epochs' pace (saved below)
                plan = replan(trainer, plan, epoch, t_mark - t_budget, epoch_times)
                write_plan(out, plan)
                save_config(trainer.cfg, out / "config.yaml")  # the epochs the run will have
            trainer.save(out, row, state, best=state.record(row))
            if _stop(trainer.cfg, state, t0):
                break
            epoch += 1
    return TrainResult(out / "best.safetensors", out / "last.safetensors", len(state.history),
                       state.best_epoch, state.best_miou, state.history,
                       time.perf_counter() - t0, state.growth,
                       plan.to_dict() if plan else None)


def _budget(trainer: Trainer, out: Path, resume: bool, t0: float) -> BudgetPlan:
    """Fit the run to ``budget_minutes`` (see budget.py); a resumed run goes on with its plan."""
    if not resume:
        return fit_to_budget(trainer, trainer.cfg.budget_minutes, time.perf_counter() - t0)
    plan = read_plan(out)
    trainer.cfg = dataclasses.replace(trainer.cfg, epochs=plan.epochs, early_stopping=0)
    return plan


def _start(out: Path, cfg: TrainConfig, setup: TrainSetup, plan: BudgetPlan | None) -> RunState:
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    setup.write_split(out / "split.json")
    if plan is not None:
        write_plan(out, plan)
    return RunState()


def _stop(cfg: TrainConfig, state: RunState, t0: float) -> bool:
    """Early stopping on validation mIoU, or the wall-clock budget (``max_minutes``) used."""
    if cfg.early_stopping and state.since_best >= cfg.early_stopping:
        log.info("no better validation mIoU for %d epochs: stopping", state.since_best)
        return True
    if cfg.max_minutes and time.perf_counter() - t0 > 60 * cfg.max_minutes:
        log.info("time budget of %s min used: stopping after epoch %d", cfg.max_minutes,
                 state.next_epoch)
        return True
    return False


class Trainer:
    """The network, optimizer, schedule and loss of a run, and one epoch of training."""

    def __init__(self, cfg: TrainConfig, setup: TrainSetup, device: torch.device) -> None:
        self.cfg, self.setup, self.device = cfg, setup, device
        self.card = setup.card(cfg)
        self.model = self._build(self.card.arch)
        self.loader = torch.utils.data.DataLoader(
            setup.train_ds, batch_size=cfg.batch_size, shuffle=False,
            num_workers=cfg.num_workers, drop_last=True)
        self._new_optimizer()
        self.loss_fn = SegmentationLoss(
            len(cfg.classes), ce_weight=cfg.loss.get("ce_weight", 1.0),
            dice_weight=cfg.loss.get("dice_weight", 1.0),
            class_weights=_class_weights(cfg, setup.train_ds), ignore_index=NODATA).to(device)
        self.amp = cfg.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def _build(self, arch: dict[str, Any]) -> torch.nn.Module:
        return create_model(**arch, encoder_weights=self.cfg.encoder_weights,
                            in_channels=len(self.setup.bands),
                            classes=len(self.cfg.classes)).to(self.device)

    def _new_optimizer(self) -> None:
        cfg = self.cfg
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = _scheduler(cfg, self.optimizer, max(1, len(self.loader)))

    def maybe_grow(self, state: RunState, epoch: int) -> None:
        """Grow a growable network on a validation plateau (see the module's docstring)."""
        grow = getattr(self.model, "grow", None)
        if grow is None or not state.plateau(getattr(self.model, "grow_patience", 0)):
            return
        old_opt, old_sched = self.optimizer, self.scheduler
        event = grow(len(state.growth), self.cfg.seed)
        if event is None:
            return
        state.growth.append({"epoch": epoch, **event})
        log.info("no better validation mIoU for %d epochs: %s the head to %s (%d parameters)",
                 state.since_best, "widened" if event["op"] == "widen" else "deepened",
                 self.model.grown_shape(), event["params"])
        self.model.to(self.device)
        self.card = dataclasses.replace(self.card,
                                        arch={**self.card.arch, **self.model.grown_shape()})
        self._new_optimizer()
        for p in self.model.parameters():  # the unchanged parameters keep their moments
            if p in old_opt.state:
                self.optimizer.state[p] = old_opt.state[p]
        self.scheduler.load_state_dict(old_sched.state_dict())
        for new, old in zip(self.optimizer.param_groups, old_opt.param_groups, strict=True):
            new["lr"] = old["lr"]

    def run_epoch(self, epoch: int, progress: bool) -> dict[str, Any]:
        """Train one epoch, validate if it is one of every ``val_every`` or the last; the
        epoch's metrics row (validation metrics None when it was not validated)."""
        self.setup.train_ds.set_epoch(epoch)
        loss = self._train_epoch(epoch, progress)
        due = (epoch + 1) % self.cfg.val_every == 0 or epoch + 1 >= self.cfg.epochs
        return self.row(epoch, loss, self._validate() if due else None)

    def row(self, epoch: int, loss: float, metrics: dict[str, Any] | None) -> dict[str, Any]:
        """An epoch's metrics row from its mean loss and validation metrics (None: not
        validated)."""
        iou = metrics["iou"] if metrics else [None] * len(self.cfg.classes)
        return {"epoch": epoch, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"],
                "val_miou": metrics["miou"] if metrics else None,
                "val_pixel_accuracy": metrics["pixel_accuracy"] if metrics else None,
                **{f"val_iou_{c}": v for c, v in zip(self.cfg.classes, iou, strict=True)},
                "params": sum(p.numel() for p in self.model.parameters())}

    def save(self, out: Path, row: dict[str, Any], state: RunState, best: bool) -> None:
        """Checkpoints (best when ``best``, last always), training state and metrics files."""
        card = with_metrics(self.card, row)
        names = ("best.safetensors", "last.safetensors") if best else ("last.safetensors",)
        for name in names:
            save_checkpoint(out / name, self.model.cpu(), card)
            self.model.to(self.device)
        save_train_state(out / "last.state.safetensors", self.optimizer, self.scheduler,
                         state.info())
        _write_history(out, state.history)

    def load(self, out: Path) -> RunState:
        """Continue from ``out``'s last state: weights, optimizer, schedule, RNGs, history."""
        from safetensors.torch import load_model

        arch = read_card(out / "last.safetensors").arch
        if arch != self.card.arch:  # a network grown in training: rebuild at its size
            self.card = dataclasses.replace(self.card, arch=dict(arch))
            self.model = self._build(arch)
            self._new_optimizer()
        info = load_train_state(out / "last.state.safetensors", self.optimizer, self.scheduler)
        load_model(self.model, str(out / "last.safetensors"), strict=True,
                   device=str(self.device))
        return RunState.from_info(info)

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.float16) if self.amp \
            else contextlib.nullcontext()

    def _train_epoch(self, epoch: int, progress: bool) -> float:
        cfg = self.cfg
        self.model.train()
        total, n = 0.0, 0
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not progress, file=sys.stderr, dynamic_ncols=True, leave=False)
        for image, label in bar:
            total += self.step(image, label)
            n += 1
            bar.set_postfix(loss=f"{total / n:.4f}")
        return total / max(n, 1)

    def step(self, image: torch.Tensor, label: torch.Tensor) -> float:
        """One optimizer and schedule step on a batch; its loss."""
        model, opt, cfg = self.model, self.optimizer, self.cfg
        image, label = image.to(self.device), label.to(self.device)
        opt.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.loss_fn(model(image), label)
            aux = getattr(model, "auxiliary_loss", None)
            if aux is not None:  # training-only heads (PointRend points, STDC detail)
                loss = loss + aux(label)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        self.scaler.step(opt)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    @torch.inference_mode()
    def _validate(self) -> dict[str, Any]:
        self.model.eval()
        cm = ConfusionMatrix(len(self.cfg.classes), ignore_index=NODATA)
        loader = torch.utils.data.DataLoader(self.setup.val_ds, batch_size=self.cfg.batch_size,
                                             shuffle=False)
        for image, label in loader:
            with self._autocast():
                pred = self.model(image.to(self.device)).argmax(1).cpu()
            cm.update(pred.numpy(), label.numpy())
        return cm.compute()


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


def _write_history(out: Path, history: list[dict[str, Any]]) -> None:
    (out / "metrics.json").write_text(json.dumps(history, indent=2))
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
