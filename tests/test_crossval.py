"""Cross-validation by whole image: the folds, and K runs scored on their own images whole."""

import json
import statistics
from pathlib import Path

import pytest
from conftest import tiny_train_config

from agriseg.crossval import cross_validate, format_cv_table
from agriseg.errors import AgrisegError
from agriseg.samples import Sample, fold_samples
from agriseg.training.setup import read_split


def samples(n):
    return [Sample(Path(f"/d/img{i:02d}.tif"), Path(f"/d/img{i:02d}_labels.tif"))
            for i in range(n)]


@pytest.mark.parametrize("n", [2, 3, 5, 7, 12])
def test_folds_are_disjoint_by_image_cover_each_once_and_balanced(n):
    for k in range(2, n + 1):
        groups = fold_samples(samples(n)[::-1], k, seed=3)
        names = [s.image.name for g in groups for s in g]
        assert len(groups) == k and all(groups)
        assert sorted(names) == sorted(s.image.name for s in samples(n))  # each exactly once
        assert max(map(len, groups)) - min(map(len, groups)) <= 1
        assert fold_samples(samples(n), k, seed=3) == groups  # input order does not matter


def test_folds_follow_the_seed():
    a, b = (fold_samples(samples(12), 3, seed=s) for s in (0, 1))
    assert a == fold_samples(samples(12), 3, seed=0)
    assert a != b


@pytest.mark.parametrize("k", [0, 1, 4])
def test_fold_counts_outside_2_to_the_image_count_are_refused(k):
    with pytest.raises(AgrisegError, match="use 2 to 3 folds"):
        fold_samples(samples(3), k)


def config(folder, out, *extra):
    return tiny_train_config(folder, out, "epochs=1", "device=cpu", *extra)


def test_cross_validation_trains_and_scores_each_fold_on_its_images(fields, tmp_path):
    out = tmp_path / "cv"
    cv = cross_validate(config(fields, tmp_path / "ignored"), out, folds=3)
    images = sorted(str(p) for p in fields.glob("f?.tif"))
    vals = [f["validation"] for f in cv["per_fold"]]
    assert sorted(v for val in vals for v in val) == images  # disjoint, each image once
    for f in cv["per_fold"]:
        split = json.loads((out / f"fold-{f['fold']}" / "split.json").read_text())
        assert split["validation"] == f["validation"]
        assert sorted(split["train"]) == sorted(set(images) - set(f["validation"]))
        assert read_split(out / f"fold-{f['fold']}" / "split.json") == {
            k: [Path(x) for x in split[k]] for k in ("train", "validation")}
        ev = json.loads((out / f"fold-{f['fold']}" / "evaluation.json").read_text())
        assert ev["model"] == f["checkpoint"] and ev["images"] == 1  # whole-image score
        assert f["checkpoint"].endswith("last.safetensors")  # not chosen on these images
        assert f["miou"] == pytest.approx(ev["overall"]["miou"])
        assert list(f["iou"].values()) == pytest.approx(ev["overall"]["iou"])
    mious = [f["miou"] for f in cv["per_fold"]]
    assert cv["mean"]["miou"] == pytest.approx(statistics.mean(mious))
    assert cv["std"]["miou"] == pytest.approx(statistics.stdev(mious))
    crop = [f["iou"]["crop"] for f in cv["per_fold"]]
    assert cv["mean"]["iou"]["crop"] == pytest.approx(statistics.mean(crop))
    assert json.loads((out / "cv.json").read_text())["mean"] == cv["mean"]
    assert not (tmp_path / "ignored").exists()
    table = format_cv_table(cv).splitlines()
    assert len(table) == 5 and table[-1].split()[:2] == ["mean", f"{cv['mean']['miou']:.4f}"]


def test_cross_validation_refuses_a_given_validation_split(fields, tmp_path):
    with pytest.raises(AgrisegError, match="val_images"):
        cross_validate(config(fields, tmp_path / "x", "val_images=[f2.tif]"), folds=2)
    with pytest.raises(AgrisegError, match="cannot make 4 cross-validation folds from 3"):
        cross_validate(config(fields, tmp_path / "x"), folds=4)
    assert not (tmp_path / "x").exists()


def test_a_budget_is_shared_by_the_folds(fields, tmp_path):
    cross_validate(config(fields, tmp_path / "cv", "budget_minutes=0.1"), folds=2)
    plans = [json.loads((tmp_path / "cv" / f"fold-{i}" / "budget.json").read_text())
             for i in (1, 2)]
    assert 1 / 60 <= plans[0]["budget_minutes"] <= 0.1 / 2  # half of what was left
    rest = max(1 / 60, 0.1 - plans[0]["setup_s"] / 60)  # what fold 1 left, at least 1 s
    assert 1 / 60 <= plans[1]["budget_minutes"] <= rest
