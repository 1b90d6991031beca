"""Every architecture agriseg builds itself has a config in configs/models/ that builds."""

from pathlib import Path

import pytest
import torch
import yaml

from agriseg.models.registry import ARCHITECTURES, model_from_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "models"
OWN = sorted(k for k, spec in ARCHITECTURES.items() if spec.module)


def test_the_own_architectures_are_found():
    assert {"deeplab", "denseaspp"} <= set(OWN)


@pytest.mark.parametrize("name", OWN)
def test_each_has_a_config_that_builds(name):
    cfg = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["arch"]
    assert cfg["arch"] == name
    model = model_from_config(cfg, in_channels=3, classes=3).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 96)).shape == (1, 3, 64, 96)
