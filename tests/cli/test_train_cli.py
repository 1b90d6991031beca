"""``agriseg train`` and ``map`` without --model through the CLI."""

import json
from pathlib import Path

import numpy as np
from cli_helpers import assert_bad_input, run
from conftest import write_raster

SAMPLES = Path(__file__).resolve().parents[2] / "sample_tiles"
TINY = "arch={arch: unet, encoder_name: resnet18, encoder_depth: 3, decoder_channels: [8, 8, 8]}"


def field(folder, n=2):
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(0, 255, (3, 64, 64)).astype(np.uint8)
        lab = (img[0] > 128).astype(np.uint8)
        write_raster(folder / f"f{i}.tif", img, descriptions=("red", "green", "blue"))
        write_raster(folder / f"f{i}_labels.tif", lab[None], nodata=255)


def test_train_runs_and_reports(tmp_path):
    field(tmp_path)
    out = tmp_path / "run"
    r = run("-q", "train", f"images={tmp_path}/f?.tif", f"labels={tmp_path}", "epochs=1",
            "patch_px=32", "batch_size=2", "windows_per_epoch=4", "classes=[soil, crop]",
            TINY, f"out_dir={out}", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["epochs_run"] == 1
    for name in ("best.safetensors", "last.safetensors", "last.state.safetensors",
                 "config.yaml", "split.json", "metrics.csv", "metrics.json"):
        assert (out / name).exists(), name


def test_train_bad_inputs_exit_2_before_training(tmp_path):
    field(tmp_path)
    out = tmp_path / "run"
    base = [f"images={tmp_path}/f?.tif", f"labels={tmp_path}", f"out_dir={out}", TINY]
    assert_bad_input(run("-q", "train", *base, "bands=[red, green, blue, nir]"), "nir")
    assert_bad_input(run("-q", "train", *base, "classes=[soil]"), "2 classes")
    assert_bad_input(run("-q", "train", *base, "epochz=2"), "unknown training config keys")
    assert_bad_input(run("-q", "train", "-c", tmp_path / "none.yaml"), "not found")
    assert not out.exists()


def test_map_without_model_uses_the_default(tmp_path):
    r = run("-q", "map", SAMPLES / "field_small.tif", "-o", tmp_path / "m", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["model"]["name"] == "agriseg-default"


def test_train_folds_trains_each_fold_and_prints_the_mean(tmp_path):
    field(tmp_path)
    out = tmp_path / "cv"
    r = run("-q", "train", "--folds", "2", f"images={tmp_path}/f?.tif", f"labels={tmp_path}",
            "epochs=1", "patch_px=32", "batch_size=2", "windows_per_epoch=4",
            "classes=[soil, crop]", TINY, f"out_dir={out}")
    assert r.exit_code == 0, r.output
    cv = json.loads((out / "cv.json").read_text())
    lines = r.output.strip().splitlines()
    assert lines[0].split() == ["fold", "images", "mIoU", "IoU", "soil", "IoU", "crop"]
    assert [ln.split()[0] for ln in lines[1:]] == ["1", "2", "mean"]
    assert lines[-1].split()[1] == f"{cv['mean']['miou']:.4f}"
    vals = [json.loads((out / f"fold-{i}" / "split.json").read_text())["validation"]
            for i in (1, 2)]
    assert sorted(v for val in vals for v in val) == [str(tmp_path / "f0.tif"),
                                                      str(tmp_path / "f1.tif")]
    for i in (1, 2):
        assert (out / f"fold-{i}" / "best.safetensors").exists()


def test_train_folds_and_budget_bad_values_exit_2(tmp_path):
    field(tmp_path)
    out = tmp_path / "run"
    base = [f"images={tmp_path}/f?.tif", f"labels={tmp_path}", f"out_dir={out}", TINY]
    assert_bad_input(run("-q", "train", "--folds", "3", *base), "3 cross-validation folds",
                     "2 to 2")
    assert_bad_input(run("-q", "train", "--folds", "1", *base), "use 2 to 2 folds")
    assert_bad_input(run("-q", "train", "--budget", "1", "max_minutes=2", *base),
                     "budget_minutes and max_minutes")
    assert_bad_input(run("-q", "train", "--budget", "0", *base), "budget_minutes must be > 0")
    assert not out.exists()


def test_train_budget_says_what_it_chose(tmp_path):
    field(tmp_path)
    out = tmp_path / "run"
    r = run("-q", "train", "--budget", "0.001", f"images={tmp_path}/f?.tif",
            f"labels={tmp_path}", "patch_px=32", "batch_size=2", "windows_per_epoch=4",
            "classes=[soil, crop]", TINY, f"out_dir={out}")
    assert r.exit_code == 0, r.output
    plan = json.loads((out / "budget.json").read_text())
    assert plan["budget_minutes"] == 0.001 and plan["epochs"] == 1  # 0.06 s: one epoch
    assert r.output.startswith(f"budget 0.001 min: {plan['step_s']:.3f} s/step measured -> "
                               "1 epochs (2 schedule steps)")
