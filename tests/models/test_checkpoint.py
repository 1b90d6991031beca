import pickle

import pytest
import torch
from safetensors.torch import save_file

from agriseg.errors import CheckpointError, InputNotFoundError
from agriseg.models.card import ModelCard, Normalization
from agriseg.models.checkpoint import load_checkpoint, read_card, save_checkpoint
from agriseg.models.registry import create_model

MARKER = "agriseg_pickle_was_executed"


class Exploit:
    """Unpickling this would create a marker file: it must never happen."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def card(**kw):
    base = dict(arch={"arch": "deeplabv3plus", "encoder_name": "resnet18"},
                bands=("red", "green", "blue"), classes=("soil", "crop", "weed"),
                normalization=Normalization(mean=(120.0, 110.0, 90.0), std=(40.0, 35.0, 30.0)),
                patch_px=256, pixel_size_m=0.01, metrics={"val_miou": 0.5})
    base.update(kw)
    return ModelCard(**base)


def test_round_trip_gives_identical_outputs_and_card(tmp_path):
    torch.manual_seed(0)
    model = create_model("deeplabv3plus", "resnet18", in_channels=3, classes=3).eval()
    c = card()
    path = save_checkpoint(tmp_path / "m.safetensors", model, c)
    loaded, c2 = load_checkpoint(path)
    assert c2 == c and read_card(path) == c
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_pickle_disguised_as_checkpoint_is_refused_unexecuted(tmp_path):
    marker = tmp_path / MARKER
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(pickle.dumps(Exploit(str(marker))))
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_checkpoint(bad)
    # a torch.save file too (zip container with a pickle inside)
    torch.save({"x": Exploit(str(marker))}, tmp_path / "m2.safetensors")
    with pytest.raises(CheckpointError):
        read_card(tmp_path / "m2.safetensors")
    assert not marker.exists()


def test_safetensors_without_card_and_corrupt_files_are_refused(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not an agriseg checkpoint"):
        read_card(plain)
    good = save_checkpoint(tmp_path / "good.safetensors",
                           create_model("pixel", in_channels=3, classes=3),
                           card(arch={"arch": "pixel"}))
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(CheckpointError):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError):
        read_card(garbage)
    with pytest.raises(InputNotFoundError):
        read_card(tmp_path / "missing.safetensors")


def test_weights_that_do_not_match_the_card_are_refused(tmp_path):
    model = create_model("pixel", in_channels=4, classes=3)
    path = save_checkpoint(tmp_path / "m.safetensors", model, card(arch={"arch": "pixel"}))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(path)


def test_card_validation():
    from agriseg.errors import ConfigError

    with pytest.raises(ConfigError, match="3 bands"):
        card(normalization=Normalization.from_scale(255, 4))
    with pytest.raises(ConfigError, match="dtype"):
        card(dtype="complex64")
    with pytest.raises(ConfigError, match="positive"):
        Normalization(mean=(0.0,), std=(0.0,))
    assert card().colors[2] == (220, 20, 60)
    assert ModelCard.from_json(card().to_json()) == card()


def test_a_checkpoint_whose_header_length_starts_like_a_pickle_is_read(tmp_path):
    """A safetensors file starts with its header's length: when that length's first byte is
    0x80 (one file in 256), it must still be read, not refused as a pickle."""
    model = create_model("pixel", "none", in_channels=3, classes=3)
    for pad in range(300):
        path = save_checkpoint(tmp_path / f"m{pad}.safetensors", model,
                               card(arch={"arch": "pixel"}, description="x" * pad))
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length starting with 0x80")
    assert read_card(path).description == "x" * pad
    model2, _ = load_checkpoint(path)
    assert isinstance(model2, torch.nn.Module)
