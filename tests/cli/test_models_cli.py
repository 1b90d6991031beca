import json

from click.testing import CliRunner

from agriseg.cli.main import cli


def test_models_lists_architectures_and_encoders():
    r = CliRunner().invoke(cli, ["models", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert {"deeplabv3plus", "pspnet", "upernet", "fpn", "unet"} <= set(data["architectures"])
    assert "resnet18" in data["encoders"] and "mobilenet_v2" in data["encoders"]
    text = CliRunner().invoke(cli, ["models", "--no-encoders"]).output
    assert "ASPP" in text and "resnet18" not in text
    # parameter counts at 3 classes, built on the meta device
    assert set(data["parameters"]) == set(data["architectures"])
    import torch

    from agriseg.models.registry import create_model

    model = create_model("denseaspp", "resnet34", in_channels=3, classes=3)
    assert data["parameters"]["denseaspp"] == sum(p.numel() for p in model.parameters())
    assert "  denseaspp" in text and f"{data['parameters']['denseaspp'] / 1e6:6.2f} M" in text
    assert torch.device("cpu") == next(model.parameters()).device  # meta stayed inside


def test_cuda_without_gpu_is_a_bad_input(make_raster, make_checkpoint, tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = CliRunner().invoke(cli, ["predict", str(make_raster()), "-m", str(make_checkpoint()),
                                 "-o", str(tmp_path / "out.tif"), "--device", "cuda"])
    assert r.exit_code == 2 and "no CUDA GPU" in r.output
    assert not (tmp_path / "out.tif").exists()
