"""``bench_tta --split``: a fold's held-out images are scored, all of them or none."""

import json
from types import SimpleNamespace

import pytest

from bench import bench_tta


def _data_and_split(tmp_path, held_out):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("IMG_0001.tif", "IMG_0002.tif", "IMG_0003.tif", "IMG_0001_labels.tif"):
        (data / name).touch()
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [], "validation": [f"/elsewhere/{n}" for n in held_out]}))
    return data, split


def test_a_split_scores_exactly_its_validation_images(tmp_path, monkeypatch):
    data, split = _data_and_split(tmp_path, ["IMG_0003.tif", "IMG_0001.tif"])
    seen = []
    monkeypatch.setattr(bench_tta, "open_engine", lambda *a: SimpleNamespace(
        backend="torch", model_path="m"))

    def fake_evaluate(images, labels, **kw):
        seen.append([p.name for p in images])
        return {"overall": {"miou": 0.5, "iou": [], "pixel_accuracy": 0.9, "ece": 0.01}}

    monkeypatch.setattr(bench_tta, "evaluate_model", fake_evaluate)
    r = bench_tta.run(data, repeats=1, split=split)
    assert r["images"] == ["IMG_0001.tif", "IMG_0003.tif"]
    assert seen == [["IMG_0001.tif", "IMG_0003.tif"]] * len(bench_tta.LEVELS)


def test_a_split_whose_images_are_not_in_data_is_refused(tmp_path, monkeypatch):
    data, split = _data_and_split(tmp_path, ["IMG_0001.tif", "IMG_0009.tif"])
    monkeypatch.setattr(bench_tta, "open_engine", lambda *a: pytest.fail("must refuse first"))
    with pytest.raises(SystemExit, match=r"1 of the split's 2 validation images .*IMG_0009"):
        bench_tta.run(data, repeats=1, split=split)
