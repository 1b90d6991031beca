"""``budget_minutes`` (``--budget``): measured steps choose the epochs; the schedule ends on
time."""

import dataclasses
import json
import time

import pytest
from conftest import tiny_train_config
from safetensors import safe_open

from agriseg.errors import AgrisegError
from agriseg.training.config import load_config
from agriseg.training.loop import train


def config(folder, out, *extra):
    return tiny_train_config(folder, out, "val_images=[f2.tif]", "device=cpu", *extra)


def test_a_budget_ends_training_on_time_at_the_end_of_the_schedule(fields, tmp_path):
    budget_min = 0.5  # 30 s: long enough that one epoch of the tiny config is ~1% of it
    t = time.perf_counter()
    r = train(config(fields, tmp_path / "run", f"budget_minutes={budget_min}", "epochs=1000",
                     "early_stopping=1"))
    wall = time.perf_counter() - t
    assert abs(wall - 60 * budget_min) <= 0.1 * 60 * budget_min, (wall, r.budget)
    plan = json.loads((tmp_path / "run" / "budget.json").read_text())
    assert plan == pytest.approx(r.budget)
    assert len(r.history) == plan["epochs"]  # early stopping (1) is off: every chosen epoch ran
    assert plan["total_steps"] == plan["epochs"] * plan["steps_per_epoch"] == plan["epochs"] * 2
    assert plan["step_s"] > 0 and plan["validate_s"] > 0
    assert r.history[0]["lr"] > 0.9 * 0.01 * (1 + 1) / 2  # the first epoch is near the top
    assert r.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine's final value
    with safe_open(str(tmp_path / "run" / "last.state.safetensors"), "pt") as f:
        sched = json.loads(f.metadata()["agriseg_train_state"])["scheduler"]
    assert sched["T_max"] == plan["total_steps"] == sched["last_epoch"]  # ended exactly there
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.epochs == plan["epochs"] and saved.early_stopping == 0


def test_a_budget_run_trains_as_the_same_number_of_epochs_would(fields, tmp_path):
    """The measurement puts weights, optimizer and RNGs back: no trace in the result."""
    from safetensors.torch import load_file

    r = train(config(fields, tmp_path / "b", "budget_minutes=0.001"))  # too short: 1 epoch
    assert r.budget["epochs"] == len(r.history) == 1
    plain = train(config(fields, tmp_path / "p", "epochs=1"))
    assert [h["loss"] for h in r.history] == [h["loss"] for h in plain.history]
    a, b = (load_file(str(tmp_path / d / "last.safetensors")) for d in "bp")
    assert all(a[k].equal(b[k]) for k in a)


def test_budget_and_max_minutes_cannot_both_be_given(fields, tmp_path):
    with pytest.raises(AgrisegError, match="budget_minutes and max_minutes"):
        config(fields, tmp_path, "budget_minutes=1", "max_minutes=2")
    with pytest.raises(AgrisegError, match="budget_minutes must be > 0"):
        config(fields, tmp_path, "budget_minutes=0")


def test_a_resumed_budget_run_keeps_its_plan_and_ends_the_schedule(fields, tmp_path):
    cfg = config(fields, tmp_path / "run", "budget_minutes=0.2")
    first = train(cfg, stop_after=1)
    assert len(first.history) == 1
    r = train(cfg, resume=True)
    plan = json.loads((tmp_path / "run" / "budget.json").read_text())
    assert len(r.history) == plan["epochs"] == r.budget["epochs"]  # > 1 unless the CPU is busy
    assert r.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    with safe_open(str(tmp_path / "run" / "last.state.safetensors"), "pt") as f:
        sched = json.loads(f.metadata()["agriseg_train_state"])["scheduler"]
    assert sched["T_max"] == sched["last_epoch"] == plan["total_steps"]


def test_replanning_with_val_every_averages_whole_validation_cycles():
    """Epochs that validate are slower: the pace is the mean over whole cycles of val_every
    epochs (one validation each), and the last epoch's validation is kept in reserve."""
    from types import SimpleNamespace

    from agriseg.training.budget import BudgetPlan, replan
    from agriseg.training.config import TrainConfig

    def trainer(v):
        return SimpleNamespace(cfg=TrainConfig(epochs=10, val_every=v),
                               scheduler=SimpleNamespace(T_max=100))

    plan = BudgetPlan(budget_minutes=1, step_s=0.1, validate_s=5.0, save_s=0.0, setup_s=0.0,
                      steps_per_epoch=10, epochs=10, total_steps=100, val_every=3)
    t = trainer(3)
    new = replan(t, plan, finished=5, elapsed_s=16.0, epoch_times=[1, 1, 6, 1, 1, 6])
    # 60 - 16 s left, less 5 s for the last validation, at 16/6 s per epoch: 14.6 more epochs
    assert new.epochs == 6 + 15 == t.cfg.epochs and t.scheduler.T_max == 210
    assert new.replans == 1 and new.used_s == 16.0
    t = trainer(3)  # before a whole cycle: the median plus a third of a validation
    assert replan(t, plan, finished=1, elapsed_s=2.0, epoch_times=[1, 1]).epochs == 2 + 20
    one = dataclasses.replace(plan, val_every=1)
    t = trainer(1)  # every epoch validates: the median of the last five, nothing reserved
    assert replan(t, one, finished=4, elapsed_s=30.0, epoch_times=[6, 6, 6, 60, 6]).epochs == 10
