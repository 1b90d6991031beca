import pytest
import torch
from arch_contract import ArchContract

from agriseg.models.registry import input_divisor


class TestSTDC(ArchContract):
    arch = "stdc"
    encoder = "stdc1"
    options = {"context_channels": 32, "fuse_channels": 64, "detail_channels": 16}

    @pytest.mark.parametrize("batch", [1, 2])
    def test_finite_outputs_and_gradients_in_train_and_eval(self, batch):
        """The contract's test, with the detail loss added: the detail head trains only
        through :meth:`auxiliary_loss`, never through the output."""
        model = self.build()
        assert all(s % input_divisor(model) == 0 for s in self.size) and input_divisor(model) == 32
        model.train()
        out = model(self.x(batch))
        assert out.shape == (batch, 3, *self.size) and torch.isfinite(out).all()
        labels = torch.zeros(batch, *self.size, dtype=torch.int64)
        labels[:, 20:60, 30:90] = 1
        labels[:, :8] = 255
        (out.square().mean() + model.auxiliary_loss(labels)).backward()
        missing = [n for n, p in model.named_parameters()
                   if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
        assert not missing, f"parameters without a finite gradient: {missing[:5]}"
        model.eval()
        with torch.no_grad():
            assert torch.isfinite(model(self.x(batch))).all()


def test_stdc2_and_unknown_networks():
    from agriseg.errors import ConfigError
    from agriseg.models.registry import create_model

    model = create_model("stdc", "stdc2", classes=4).eval()
    assert [len(s) for s in model.encoder.stages[2:]] == [4, 5, 3]
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 96)).shape == (1, 4, 64, 96)
    with pytest.raises(ConfigError, match="stdc1, stdc2"):
        create_model("stdc", "resnet18")
