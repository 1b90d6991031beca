"""Training that fits the time you have: ``budget_minutes`` chooses the number of epochs.

A fixed ``epochs`` either wastes the time a user has or runs over it, and ``max_minutes`` stops
after the epoch that passes the limit, which can cut a cosine schedule half-way (the learning
rate is still high, the last epochs are the noisy ones). With a budget, the run first measures
itself: a few warm-up steps, then the mean time of the next optimizer steps (data loading
included), one validation pass and one checkpoint save. The number of epochs is then the
remaining budget divided by the estimated epoch time (rounded to the nearest whole epoch), and
the schedule is built for exactly that many steps. As the pace of the first steps can mislead
(start-up, another process sharing the CPU), the plan is corrected after every epoch but the
last from the median time of the last five epochs: the cosine schedule is stretched or shrunk
from where it stands (one-cycle keeps the first plan), so it always ends at its final value on
the last step, and the run ends within about half an epoch of the budget. With ``val_every``
the plan counts one validation in that many epochs, and keeps one back for the last epoch.

The measurement runs on the real network, optimizer and data, then everything it touched is put
back (weights and normalization buffers, a fresh optimizer and schedule, every RNG), so a budget
run trains exactly as ``epochs=<chosen>`` would. With a budget, early stopping is off (stopping
on a plateau would end the schedule half-way; ``best.safetensors`` still keeps the best epoch),
and ``max_minutes`` cannot be given as well. The choice is logged and written to
``budget.json`` with the time used so far; ``--resume`` reads it back and goes on planning from
there (the time between the calls does not count).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from agriseg.errors import InputNotFoundError
from agriseg.training.rng import rng_state, set_rng_state

if TYPE_CHECKING:
    from agriseg.training.loop import Trainer

log = logging.getLogger("agriseg")

WARMUP_STEPS = 2  # not timed: first-call allocations, lazy file opening
MEASURED_STEPS = 8
BUDGET_FILE = "budget.json"


@dataclass(frozen=True)
class BudgetPlan:
    """What a time budget chose, and the measurements it chose from (seconds)."""

    budget_minutes: float
    step_s: float  # mean time of one optimizer step, data loading included
    validate_s: float  # one validation pass
    save_s: float  # one epoch's checkpoints, training state and metrics
    setup_s: float  # from the start of the run to the end of the measurement
    steps_per_epoch: int
    epochs: int
    total_steps: int  # the schedule's length: it ends at its final value on the last step
    first_epochs: int = 0  # the epochs chosen from the measurement, before any re-planning
    replans: int = 0  # times the epochs were changed after an epoch from its measured time
    used_s: float = 0.0  # of the budget, after the last finished epoch (resume goes on from it)

    val_every: int = 1  # validations come once in this many epochs

    @property
    def epoch_s(self) -> float:
        return (self.steps_per_epoch * self.step_s + self.validate_s / self.val_every
                + self.save_s)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "epoch_s": self.epoch_s}


def fit_to_budget(trainer: Trainer, budget_minutes: float, elapsed_s: float) -> BudgetPlan:
    """Measure ``trainer``, put it back as it was, and set its epochs and schedule to fit
    ``budget_minutes`` (of which ``elapsed_s`` seconds are already used)."""
    t0 = time.perf_counter()
    weights = copy.deepcopy(trainer.model.state_dict())
    rng_tensors, rng_values = rng_state()
    step_s = _time_steps(trainer, WARMUP_STEPS, MEASURED_STEPS)
    t = time.perf_counter()
    metrics = trainer._validate()
    validate_s = time.perf_counter() - t
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agriseg-budget-") as tmp:
        from agriseg.training.loop import RunState

        row = trainer.row(0, 0.0, metrics)
        trainer.save(Path(tmp), row, RunState(history=[row]), best=True)
    save_s = time.perf_counter() - t

    trainer.model.load_state_dict(weights)
    set_rng_state(rng_tensors, rng_values)
    steps = max(1, len(trainer.loader))
    setup_s = elapsed_s + time.perf_counter() - t0
    val_every = trainer.cfg.val_every
    # one validation in val_every epochs, and one more after the last (counted in the setup)
    epoch_s = steps * step_s + validate_s / val_every + save_s
    epochs = max(1, round((60 * budget_minutes - setup_s - validate_s * (val_every > 1))
                          / epoch_s))
    trainer.cfg = dataclasses.replace(trainer.cfg, epochs=epochs, early_stopping=0)
    trainer._new_optimizer()  # a fresh optimizer, and a schedule of epochs * steps
    trainer.scaler = torch.amp.GradScaler("cuda", enabled=trainer.amp)
    plan = BudgetPlan(budget_minutes=budget_minutes, step_s=step_s, validate_s=validate_s,
                      save_s=save_s, setup_s=setup_s, steps_per_epoch=steps, epochs=epochs,
                      total_steps=epochs * steps, first_epochs=epochs, val_every=val_every)
    if setup_s + epoch_s > 60 * budget_minutes:
        log.warning("a budget of %s min is shorter than setup and one epoch (%.1f s): training "
                    "1 epoch", budget_minutes, setup_s + epoch_s)
    log.info("budget %s min: %.3f s/step, %.2f s validation, %d steps/epoch, %.1f s used "
             "setting up -> %d epochs, a %s schedule of %d steps", budget_minutes, step_s,
             validate_s, steps, setup_s, epochs, trainer.cfg.schedule, plan.total_steps)
    return plan


def _time_steps(trainer: Trainer, warmup: int, measured: int) -> float:
    """Seconds per optimizer step (data loading included): the mean of ``measured`` steps but
    the slowest, after ``warmup`` untimed ones, cycling through epoch 0's batches as often as
    needed. Untimed and dropped, because the first steps after start-up are slower than the rest
    (allocator and kernel warm-up)."""
    trainer.setup.train_ds.set_epoch(0)
    trainer.model.train()
    times: list[float] = []
    t = time.perf_counter()
    while len(times) < warmup + measured:
        for image, label in trainer.loader:
            trainer.step(image, label)
            now = time.perf_counter()
            times.append(now - t)
            t = now
            if len(times) == warmup + measured:
                break
    log.debug("budget: step times %s", ", ".join(f"{x:.3f}" for x in times))
    kept = sorted(times[warmup:])[:-1] or times[warmup:]  # the slowest step is an outlier
    return sum(kept) / len(kept)


def replan(trainer: Trainer, plan: BudgetPlan, finished: int, elapsed_s: float,
           epoch_times: list[float]) -> BudgetPlan:
    """After epoch ``finished``: the epochs that fit the time left at the pace of the recent
    epochs (at least one more while the plan has any left), the cosine schedule stretched or
    shrunk to end on the new last step. A no-op for one-cycle (its phases are fixed) and once
    the planned epochs are done."""
    plan = dataclasses.replace(plan, used_s=elapsed_s)
    if finished + 1 >= plan.epochs or trainer.cfg.schedule == "onecycle" or not epoch_times:
        return plan
    left = 60 * plan.budget_minutes - elapsed_s
    v = plan.val_every
    if v == 1:
        epoch_s = statistics.median(epoch_times[-5:])  # follows a lasting load, not a spike
    else:
        # any v epochs in a row hold one validation: average over whole cycles (at most two)
        n = min(len(epoch_times), 2 * v) // v * v
        epoch_s = (statistics.fmean(epoch_times[-n:]) if n
                   else statistics.median(epoch_times) + plan.validate_s / v)
        left -= plan.validate_s  # the last epoch is always validated
    epochs = finished + 1 + max(1, round(left / epoch_s))  # within half an epoch either way
    if epochs == plan.epochs:
        return plan
    if trainer.cfg.schedule == "cosine":
        # CosineAnnealingLR steps by the ratio of successive cosines, so with a new T_max the
        # learning rate carries on smoothly from where it is and reaches eta_min at T_max
        trainer.scheduler.T_max = epochs * plan.steps_per_epoch
    trainer.cfg = dataclasses.replace(trainer.cfg, epochs=epochs)
    log.debug("budget: %.2f s/epoch, %.1f s left -> %d epochs in all", epoch_s, left, epochs)
    return dataclasses.replace(plan, epochs=epochs, total_steps=epochs * plan.steps_per_epoch,
                               replans=plan.replans + 1)


def write_plan(out: Path, plan: BudgetPlan) -> None:
    (out / BUDGET_FILE).write_text(json.dumps(plan.to_dict(), indent=2) + "\n")


def read_plan(out: Path) -> BudgetPlan:
    """The plan a budget run chose (to resume it with the same epochs)."""
    path = out / BUDGET_FILE
    if not path.is_file():
        raise InputNotFoundError(f"{path}: not found; this run had no time budget to resume "
                                 "(drop budget_minutes/--budget, or start a new out_dir)")
    data = json.loads(path.read_text())
    data.pop("epoch_s", None)
    return BudgetPlan(**data)
