"""Every generator is seeded, saved with the training state and restored on resume."""

import random

import numpy as np
import torch

from agriseg.training.rng import reproducible, seed_everything
from agriseg.training.state import load_train_state, save_train_state


def draws():
    return (random.random(), float(np.random.random()), float(torch.rand(1)))


def test_seed_everything_seeds_python_numpy_and_torch():
    seed_everything(7)
    a = draws()
    seed_everything(7)
    assert draws() == a
    seed_everything(8)
    assert all(x != y for x, y in zip(draws(), a, strict=True))


def test_training_state_restores_every_generator(tmp_path):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    seed_everything(3)
    draws()
    save_train_state(tmp_path / "s.safetensors", opt, sched, {"epoch": 0})
    expected = draws()
    seed_everything(99)  # anything in between
    assert load_train_state(tmp_path / "s.safetensors", opt, sched) == {"epoch": 0}
    assert draws() == expected


def test_deterministic_mode_is_restored_afterwards():
    before = torch.are_deterministic_algorithms_enabled()
    with reproducible(0, deterministic=True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled() == before
