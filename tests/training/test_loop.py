"""Training end to end on tiny, clearly learnable data; resume; the shipped default model."""

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import squares_field, tiny_train_config
from safetensors.torch import load_file

from agriseg.models.checkpoint import load_checkpoint, read_card
from agriseg.training.config import load_config
from agriseg.training.loop import train

SAMPLES = Path(__file__).resolve().parents[2] / "sample_tiles"


@pytest.fixture
def squares(tmp_path):
    for i in range(3):
        squares_field(tmp_path / f"f{i}.tif", tmp_path / f"f{i}_labels.tif", seed=i)
    return tmp_path


def config(folder, out, *extra):
    return tiny_train_config(folder, out, "val_images=[f2.tif]", "windows_per_epoch=32",
                             "early_stopping=0", *extra)


def test_short_training_learns_a_clear_task(squares, tmp_path):
    r = train(config(squares, tmp_path / "run", "epochs=6"))
    losses = [h["loss"] for h in r.history]
    assert losses[-1] < 0.7 * losses[0], losses
    assert r.best_miou > 0.6, r.history  # chance for 3 classes is far below
    model, card = load_checkpoint(r.best_checkpoint)
    assert card.classes == ("soil", "crop", "weed") and card.bands == ("red", "green", "blue")
    assert card.metrics["val_miou"] == pytest.approx(r.best_miou)
    assert 100 < card.normalization.mean[0] < 140  # statistics of the training rasters
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(rows) == 6 and (tmp_path / "run" / "metrics.csv").exists()


def test_resume_equals_an_uninterrupted_run(squares, tmp_path):
    train(config(squares, tmp_path / "a", "epochs=2"))
    train(config(squares, tmp_path / "b", "epochs=2"), stop_after=1)
    train(config(squares, tmp_path / "b", "epochs=2"), resume=True)
    a, b = (load_file(str(tmp_path / d / "last.safetensors")) for d in "ab")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k].numpy(), b[k].numpy()), k


def test_val_every_validates_every_nth_epoch_and_the_last(squares, tmp_path):
    """Skipped validations leave empty metrics; the same weights as validating every epoch
    (validation changes no state), and the best checkpoint is chosen among validated epochs."""
    r = train(config(squares, tmp_path / "v", "epochs=5", "val_every=2"))
    validated = [h["epoch"] for h in r.history if h["val_miou"] is not None]
    assert validated == [1, 3, 4]  # every 2nd, and the last
    assert r.best_epoch in validated
    assert all(h["val_iou_crop"] is None for h in r.history if h["epoch"] not in validated)
    csv_rows = (tmp_path / "v" / "metrics.csv").read_text().splitlines()
    assert len(csv_rows) == 6 and ",," in csv_rows[1]  # epoch 0: empty validation cells
    full = train(config(squares, tmp_path / "f", "epochs=5"))
    assert [h["loss"] for h in full.history] == [h["loss"] for h in r.history]
    assert [full.history[e]["val_miou"] for e in validated] == pytest.approx(
        [r.history[e]["val_miou"] for e in validated])
    a, b = (load_file(str(tmp_path / d / "last.safetensors")) for d in "vf")
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    with pytest.raises(Exception, match="val_every must be a whole number"):
        config(squares, tmp_path / "x", "val_every=0")


def test_bad_training_inputs_fail_before_training(squares, tmp_path):
    from agriseg.errors import AgrisegError

    with pytest.raises(AgrisegError, match="class"):
        train(config(squares, tmp_path / "x", "classes=[soil, crop]"))
    assert not (tmp_path / "x").exists()


def test_default_model_ships_with_the_package():
    from agriseg.models.default import default_checkpoint

    path = default_checkpoint()
    assert path.stat().st_size <= 10 * 2**20
    card = read_card(path)
    assert card.classes == ("soil", "crop", "weed") and card.dtype == "uint8"
    model, _ = load_checkpoint(path)
    assert sum(p.numel() for p in model.parameters()) < 2.5e6


def test_default_model_maps_a_sample_tile_well(tmp_path):
    """`agriseg map` without --model, on the sample tile held out from its training."""
    from agriseg.jobs.fieldmap import map_field
    from agriseg.metrics import ConfusionMatrix

    r = map_field(SAMPLES / "field_small.tif", tmp_path / "out")
    assert r.summary["model"]["name"] == "agriseg-default"
    with rasterio.open(tmp_path / "out" / "mask.tif") as m, \
            rasterio.open(SAMPLES / "field_small_labels.tif") as t:
        cm = ConfusionMatrix(3)
        cm.update(m.read(1), t.read(1))
    assert cm.compute()["miou"] > 0.6
    assert (tmp_path / "out" / "preview.png").exists()


def test_geographic_training_raster_stores_metres_in_the_card(tmp_path):
    """1e-7 degree pixels near 45 N are about 1 cm: the card must say metres, not degrees."""
    from rasterio.transform import from_origin

    from agriseg.raster.io import pixel_size_m

    for i in range(2):
        squares_field(tmp_path / f"f{i}.tif", tmp_path / f"f{i}_labels.tif", seed=i)
        for name in (f"f{i}.tif", f"f{i}_labels.tif"):
            with rasterio.open(tmp_path / name, "r+") as ds:
                ds.crs = "EPSG:4326"
                ds.transform = from_origin(20.0, 45.0, 1e-7, 1e-7)
    cfg = load_config(None, [f"images={tmp_path}/f?.tif", f"labels={tmp_path}",
                             "val_images=[f1.tif]", "arch={arch: pixel}", "patch_px=32",
                             "batch_size=4", "windows_per_epoch=4", "epochs=1",
                             f"out_dir={tmp_path / 'run'}"])
    card = read_card(train(cfg).best_checkpoint)
    with rasterio.open(tmp_path / "f0.tif") as src:
        expected = pixel_size_m(src)
    assert 0.005 < expected < 0.02
    assert card.pixel_size_m == pytest.approx(expected, rel=1e-9)


def test_train_takes_a_file_a_dict_or_a_config_with_overrides(squares, tmp_path, monkeypatch):
    base = config(squares, tmp_path / "run", "epochs=1")
    yaml_path = tmp_path / "c.yaml"
    from agriseg.training.config import save_config

    save_config(base, yaml_path)
    monkeypatch.chdir(tmp_path)
    r = train(yaml_path, epochs=1, out_dir="from_file", windows_per_epoch=8)
    assert r.best_checkpoint == tmp_path / "from_file" / "best.safetensors"
    assert len(r.history) == 1
    as_dict = {k: v for k, v in base.to_dict().items()}
    r2 = train(as_dict, out_dir="from_dict", windows_per_epoch=8)
    assert r2.history == r.history  # same config, same seed: the same run
    with pytest.raises(Exception, match="unknown training config keys"):
        train(base, epochz=2)


def test_a_models_auxiliary_loss_is_added_to_training(squares, tmp_path, monkeypatch):
    """Architectures with training-only heads (PointRend, STDC) add their loss this way."""
    import torch

    import agriseg.training.loop as loop

    plain = train(config(squares, tmp_path / "plain", "epochs=1"))
    calls = []
    real = loop.create_model

    def with_aux(*a, **kw):
        model = real(*a, **kw)

        def auxiliary_loss(labels):
            calls.append(labels.shape)
            assert labels.dtype == torch.int64 and model.training
            return torch.tensor(5.0)  # a constant: same gradients, loss shifted by exactly 5
        model.auxiliary_loss = auxiliary_loss
        return model

    monkeypatch.setattr(loop, "create_model", with_aux)
    aux = train(config(squares, tmp_path / "aux", "epochs=1"))
    assert len(calls) == 32 // 4  # every training batch, never in validation
    assert aux.history[0]["loss"] == pytest.approx(plain.history[0]["loss"] + 5.0, abs=1e-4)
    assert aux.history[0]["val_miou"] == pytest.approx(plain.history[0]["val_miou"])
