"""A growable network (NEAT) grows in the training loop on a validation plateau; the optimizer
keeps the schedule; checkpoints carry the grown shape; --resume rebuilds at that size."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from agriseg.models.checkpoint import load_model, read_card
from agriseg.training import loop
from agriseg.training.config import load_config
from agriseg.training.loop import train

NEAT = "{arch: neat, encoder_name: resnet18, head_width: 16, grow_patience: 1}"


@pytest.fixture
def flat_validation(monkeypatch):
    """Validation mIoU that never improves: a plateau from the second epoch on."""
    monkeypatch.setattr(loop.Trainer, "_validate",
                        lambda self: {"miou": 0.5, "pixel_accuracy": 0.5, "iou": [0.5] * 3})


def cfg(fields, out, *extra):
    return load_config(None, [f"images={fields}/f?.tif", f"labels={fields}",
                              "val_images=[f2.tif]", f"arch={NEAT}", "patch_px=64",
                              "batch_size=2", "windows_per_epoch=4", "early_stopping=0",
                              f"out_dir={out}", *extra])


def test_a_plateau_grows_the_head_and_the_grown_checkpoint_reloads(fields, tmp_path,
                                                                     flat_validation):
    r = train(cfg(fields, tmp_path / "run", "epochs=5"))
    # epoch 0 is the best; from epoch 2 on every epoch starts on a 1-epoch plateau
    params = [row["params"] for row in r.history]
    assert params[0] == params[1] < params[2] < params[3] < params[4]
    growth = r.growth
    assert [(g["epoch"], g["op"]) for g in growth] == [(2, "widen"), (3, "deepen"),
                                                       (4, "widen")]
    assert growth[-1]["params"] == params[4]
    card = read_card(r.last_checkpoint)
    assert (card.arch["head_width"], card.arch["head_blocks"]) == (40, 1)
    assert read_card(r.best_checkpoint).arch["head_width"] == 16  # best was epoch 0
    model = load_model(r.last_checkpoint)
    assert sum(p.numel() for p in model.net.parameters()) == params[4]
    with torch.no_grad():
        assert torch.isfinite(model.net(torch.zeros(1, 3, 64, 96))).all()
    # the learning rate kept following the one cosine schedule through the rebuilds
    lrs = [row["lr"] for row in r.history]
    total = 5 * 2  # epochs x batches per epoch
    expected = [0.001 * (1 + np.cos(np.pi * 2 * (e + 1) / total)) / 2 for e in range(5)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)


def test_resume_across_growth_equals_an_uninterrupted_run(fields, tmp_path,
                                                          flat_validation):
    train(cfg(fields, tmp_path / "a", "epochs=4"))
    train(cfg(fields, tmp_path / "b", "epochs=4"), stop_after=3)  # grown at epoch 2
    assert read_card(tmp_path / "b" / "last.safetensors").arch["head_width"] == 24
    train(cfg(fields, tmp_path / "b", "epochs=4"), resume=True)  # rebuilt at 24, grows again
    a, b = (load_file(str(tmp_path / d / "last.safetensors")) for d in "ab")
    assert a.keys() == b.keys() and a["head.blocks.0.conv1.weight"].shape[0] == 24
    for k in a:
        assert np.array_equal(a[k].numpy(), b[k].numpy()), k


def test_a_model_without_growth_never_grows(fields, tmp_path, flat_validation):
    arch = "arch={arch: neat, encoder_name: resnet18, head_width: 16, grow_patience: 0}"
    r = train(cfg(fields, tmp_path / "run", "epochs=3", arch))
    assert len({row["params"] for row in r.history}) == 1
