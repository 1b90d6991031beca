"""Every architecture agriseg builds itself trains through the real loop (auxiliary losses
included), and its checkpoint reloads with the card's arch."""

import math

import pytest
import torch

from agriseg.models.checkpoint import load_model
from agriseg.models.registry import ARCHITECTURES
from agriseg.training.config import load_config
from agriseg.training.loop import train

OWN = sorted(k for k, spec in ARCHITECTURES.items() if spec.module)


@pytest.mark.parametrize("arch", OWN)
def test_trains_and_reloads(arch, fields, tmp_path):
    encoder = ARCHITECTURES[arch].default_encoder or "resnet18"
    cfg = load_config(None, [f"images={fields}/f?.tif", f"labels={fields}",
                             "val_images=[f2.tif]", f"arch={{arch: {arch}, encoder_name: "
                             f"{encoder}}}", "patch_px=64", "batch_size=2",
                             "windows_per_epoch=4", "epochs=1", "early_stopping=0",
                             f"out_dir={tmp_path / 'run'}"])
    result = train(cfg)
    assert math.isfinite(result.history[-1]["loss"])
    model = load_model(result.best_checkpoint)
    assert model.card.arch["arch"] == arch
    with torch.no_grad():
        out = model.net.eval()(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 3, 64, 96) and torch.isfinite(out).all()
