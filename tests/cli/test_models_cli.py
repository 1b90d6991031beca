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


def test_cuda_without_gpu_is_a_bad_input(make_raster, make_checkpoint, tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = CliRunner().invoke(cli, ["predict", str(make_raster()), "-m", str(make_checkpoint()),
                                 "-o", str(tmp_path / "out.tif"), "--device", "cuda"])
    assert r.exit_code == 2 and "no CUDA GPU" in r.output
    assert not (tmp_path / "out.tif").exists()
