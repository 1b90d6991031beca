import pytest

from agriseg.errors import ConfigError, InputNotFoundError
from agriseg.training.config import TrainConfig, load_config, save_config


def test_yaml_and_overrides(tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("images: imgs\nlabels: labs\nepochs: 3\narch:\n  arch: unet\n"
                        "  encoder_name: resnet18\n")
    cfg = load_config(cfg_path, ["epochs=5", "arch.encoder_depth=3", "loss.dice_weight=0.5",
                                 "classes=[soil, crop]", "val_images=[a.tif]"])
    assert cfg.epochs == 5 and cfg.classes == ["soil", "crop"]
    assert cfg.arch == {"arch": "unet", "encoder_name": "resnet18", "encoder_depth": 3}
    assert cfg.loss["dice_weight"] == 0.5 and cfg.loss["ce_weight"] == 1.0
    assert cfg.images == str(tmp_path / "imgs")  # relative to the config file
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg


@pytest.mark.parametrize("overrides,match", [
    (["epochz=3"], "unknown training config keys"),
    (["epochs"], "not key=value"),
    (["epochs=0"], "epochs must be >= 1"),
    (["schedule=linear"], "schedule"),
    (["val_fraction=1.5"], "val_fraction"),
    (["batch_size=1"], "deeplabv3plus cannot train with batch_size 1"),  # the default arch
    (["batch_size=1", "arch={arch: upernet, encoder_name: resnet18}"], "upernet cannot train"),
])
def test_bad_configs_are_explained(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, ["images=x", *overrides])


def test_missing_config_and_images(tmp_path):
    with pytest.raises(InputNotFoundError):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="images"):
        TrainConfig().validate()


def test_named_encoder_weights_are_not_paths(tmp_path):
    """`imagenet` is an smp weight name, not <cwd>/imagenet; a weights file is resolved."""
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("images: imgs\nencoder_weights: imagenet\n")
    assert load_config(cfg_path).encoder_weights == "imagenet"
    assert load_config(None, ["images=x", "encoder_weights=imagenet"]).encoder_weights \
        == "imagenet"
    (tmp_path / "enc.safetensors").write_bytes(b"")
    cfg_path.write_text("images: imgs\nencoder_weights: enc.safetensors\n")
    assert load_config(cfg_path).encoder_weights == str(tmp_path / "enc.safetensors")
    cfg_path.write_text("images: imgs\nencoder_weights: weights/missing.pth\n")
    assert load_config(cfg_path).encoder_weights == str(tmp_path / "weights" / "missing.pth")


MODELS = __import__("pathlib").Path(__file__).resolve().parents[2] / "configs" / "models"


def test_arch_may_name_a_model_config(tmp_path, monkeypatch):
    import shutil

    import yaml

    shutil.copy(MODELS / "deeplab.yaml", tmp_path / "deeplab.yaml")
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text("images: imgs\narch: deeplab.yaml\n")  # relative to the config
    monkeypatch.chdir(tmp_path.parent)
    expected = yaml.safe_load((MODELS / "deeplab.yaml").read_text())["arch"]
    cfg = load_config(cfg_path)
    assert cfg.arch == expected
    cfg = load_config(cfg_path, ["arch.output_stride=8"])  # an override changes the file's
    assert cfg.arch == {**expected, "output_stride": 8}
    # as an override (relative to the current folder) and through the API's dict path
    monkeypatch.chdir(MODELS.parents[1])
    assert load_config(None, ["images=x", "arch=configs/models/neat.yaml"]).arch["arch"] == "neat"
    from agriseg.training.config import resolve_config
    assert resolve_config({"images": "x", "arch": "configs/models/ppm.yaml"}).arch["arch"] == "ppm"


def test_a_bad_arch_file_is_explained(tmp_path):
    with pytest.raises(InputNotFoundError, match="architecture config not found"):
        load_config(None, ["images=x", f"arch={tmp_path / 'none.yaml'}"])
    (tmp_path / "bad.yaml").write_text("epochs: 3\n")
    with pytest.raises(ConfigError, match="an 'arch:' mapping"):
        load_config(None, ["images=x", f"arch={tmp_path / 'bad.yaml'}"])


def test_batch_size_1_is_fine_where_the_pooling_norm_allows_it():
    cfg = load_config(None, ["images=x", "batch_size=1", "arch={arch: deeplab, "
                                                         "encoder_name: resnet18}"])
    assert cfg.batch_size == 1
