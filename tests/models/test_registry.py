"""A shared contract for every architecture: each is a short subclass (smp's tests/models)."""

import pytest
import torch

from agriseg.errors import ConfigError
from agriseg.models.card import ModelCard, Normalization
from agriseg.models.checkpoint import load_checkpoint, save_checkpoint
from agriseg.models.registry import create_model, input_divisor


class ModelContract:
    arch = "deeplabv3plus"
    kw: dict = {"encoder_name": "resnet18"}
    in_channels = 4
    classes = 3

    def build(self):
        torch.manual_seed(0)
        return create_model(self.arch, in_channels=self.in_channels, classes=self.classes,
                            **self.kw)

    def sizes(self, model):
        d = input_divisor(model)
        return [(2 * d, 3 * d), (max(64, d), max(64, d))]

    def test_forward_shapes_batch_one_and_odd_sizes(self):
        model = self.build().eval()
        for h, w in self.sizes(model):
            with torch.inference_mode():
                y = model(torch.randn(1, self.in_channels, h, w))
            assert y.shape == (1, self.classes, h, w)

    def test_backward_reaches_decoder_head_and_encoder_input(self):
        model = self.build().train()
        h, w = self.sizes(model)[1]
        y = model(torch.randn(2, self.in_channels, h, w))
        y.mean().backward()
        params = list(model.named_parameters())
        # smp keeps encoder stages deeper than encoder_depth unused, so only those may lack grads
        missing = [n for n, p in params if p.grad is None and not n.startswith("encoder.")]
        assert not missing, f"no gradient for {missing[:3]}"
        assert params[0][1].grad is not None and params[0][1].grad.abs().sum() > 0

    def test_save_load_identical(self, tmp_path):
        model = self.build().eval()
        cfg = {"arch": self.arch, **self.kw}
        card = ModelCard(arch=cfg, bands=tuple(f"b{i}" for i in range(self.in_channels)),
                         classes=tuple(f"c{i}" for i in range(self.classes)),
                         normalization=Normalization.from_scale(255, self.in_channels))
        path = save_checkpoint(tmp_path / "m.safetensors", model, card)
        loaded, _ = load_checkpoint(path)
        x = torch.randn(1, self.in_channels, *self.sizes(model)[1])
        with torch.inference_mode():
            torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


class TestDeepLabV3Plus(ModelContract):
    pass


class TestPSPNet(ModelContract):
    arch = "pspnet"


class TestUPerNet(ModelContract):
    arch = "upernet"
    classes = 5


class TestFPN(ModelContract):
    arch = "fpn"
    in_channels = 3


class TestUnet(ModelContract):
    arch = "unet"
    kw = {"encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": (32, 16, 8)}


class TestPixel(ModelContract):
    arch = "pixel"
    kw = {"hidden": 8}


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match="did you mean deeplabv3plus"):
        create_model("deeplabv3pls")
    with pytest.raises(ConfigError, match="did you mean resnet18"):
        create_model("unet", "resnet81")
    with pytest.raises(ConfigError, match="invalid option"):
        create_model("unet", "resnet18", not_an_option=3)


def test_local_encoder_weights_are_loaded_and_checked(tmp_path):
    from safetensors.torch import save_file

    donor = create_model("fpn", "resnet18", in_channels=3, classes=2)
    path = tmp_path / "enc.safetensors"
    save_file({k: v.contiguous() for k, v in donor.encoder.state_dict().items()}, str(path))
    model = create_model("fpn", "resnet18", encoder_weights=path, in_channels=3, classes=2)
    for k, v in donor.encoder.state_dict().items():
        torch.testing.assert_close(model.encoder.state_dict()[k], v)
    with pytest.raises(Exception, match="do not fit"):
        create_model("fpn", "resnet18", encoder_weights=path, in_channels=4, classes=2)


def test_named_encoder_weights_go_to_smp(monkeypatch):
    """`imagenet` is smp's to download (never in tests): check it is handed over, not opened."""
    import segmentation_models_pytorch as smp

    seen = {}
    real = smp.FPN

    def fake(**kw):
        seen.update(kw)
        return real(**{**kw, "encoder_weights": None})

    monkeypatch.setattr(smp, "FPN", fake)
    monkeypatch.setattr(smp.FPN, "__init__", real.__init__, raising=False)
    create_model("fpn", "resnet18", encoder_weights="imagenet", in_channels=3, classes=2)
    assert seen["encoder_weights"] == "imagenet"
    with pytest.raises(Exception, match="not found"):
        create_model("fpn", "resnet18", encoder_weights="weights/enc.safetensors")


def test_named_weights_that_cannot_be_fetched_are_one_clear_error(monkeypatch):
    import segmentation_models_pytorch as smp

    from agriseg.errors import CheckpointError

    def offline(**kw):
        raise OSError("Name or service not known\nretrying...")

    monkeypatch.setattr(smp, "FPN", offline)
    with pytest.raises(CheckpointError, match="needs the internet"):
        create_model("fpn", "resnet18", encoder_weights="imagenet")

    def unknown(**kw):
        raise KeyError("Wrong pretrained weights `imagenett` for encoder `resnet18`")

    monkeypatch.setattr(smp, "FPN", unknown)
    with pytest.raises(ConfigError, match="imagenett"):
        create_model("fpn", "resnet18", encoder_weights="imagenett")


def test_partly_matching_encoder_file_warns_with_counts(tmp_path, caplog):
    from safetensors.torch import save_file

    donor = create_model("fpn", "resnet18", in_channels=3, classes=2)
    state = {k: v.contiguous() for k, v in donor.encoder.state_dict().items()
             if not k.startswith("layer4")}
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(tmp_path / "enc.safetensors"))
    total = len(donor.encoder.state_dict())
    with caplog.at_level("WARNING", logger="agriseg"):
        create_model("fpn", "resnet18", encoder_weights=tmp_path / "enc.safetensors",
                     in_channels=3, classes=2)
    assert f"loaded {len(state) - 1} of the encoder's {total} tensors" in caplog.text
    assert "1 in the file are not used (e.g. extra.weight)" in caplog.text
