import pytest
import torch
from arch_contract import ArchContract

from agriseg.models.registry import input_divisor


class TestSTDC(ArchContract):
    arch = "stdc"
    encoder = "stdc1"
    options = {"context_channels": 32, "fuse_channels": 64, "detail_channels": 16}

    def test_input_divisor_is_32(self):
        assert input_divisor(self.build()) == 32


def test_stdc2_and_unknown_networks():
    from agriseg.errors import ConfigError
    from agriseg.models.registry import create_model

    model = create_model("stdc", "stdc2", classes=4).eval()
    assert [len(s) for s in model.encoder.stages[2:]] == [4, 5, 3]
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 96)).shape == (1, 4, 64, 96)
    with pytest.raises(ConfigError, match="stdc1, stdc2"):
        create_model("stdc", "resnet18")
