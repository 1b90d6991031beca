"""``bench_accuracy``'s modes that read finished runs: the report, ``--errors``, ``--fit``
and ``--edges`` (the training itself is the bench's own)."""

import json

import numpy as np
import pytest
import rasterio
from conftest import write_raster
from scipy import ndimage

from agriseg.jobs.evaluate import evaluate_model
from bench import bench_accuracy


def _fold(root, fold, images):
    d = root / f"fold-{fold}"
    d.mkdir(parents=True)
    per_image = []
    for name, confusion in images:
        support = [sum(row) for row in confusion]
        iou = [confusion[k][k] / (support[k] + sum(r[k] for r in confusion) - confusion[k][k])
               for k in range(2)]
        per_image.append({"image": f"/data/{name}.tif", "confusion": confusion,
                          "support": support, "iou": iou, "miou": sum(iou) / 2})
    (d / "evaluation.json").write_text(json.dumps({"classes": ["soil", "weed"],
                                                   "per_image": per_image}))


def test_errors_pools_the_folds_held_out_images_and_lists_the_worst(tmp_path):
    _fold(tmp_path, 1, [("IMG_1", [[90, 10], [0, 10]])])        # mIoU (0.9 + 0.5) / 2
    _fold(tmp_path, 2, [("IMG_2", [[80, 0], [10, 10]]),              # mIoU (0.889 + 0.5) / 2
                        ("IMG_3", [[100, 0], [0, 20]])])             # perfect
    text = bench_accuracy.errors(tmp_path, worst=2)
    # pooled [[270, 10], [10, 40]]: IoU soil 270 / 290, weed 40 / 60
    assert f"3 held-out images pooled, mIoU {(270 / 290 + 40 / 60) / 2:.4f}" in text
    assert "| soil | 96.4% | 3.6% |" in text and "| weed | 20.0% | 80.0% |" in text
    worst = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| IMG_")]
    assert worst == ["| IMG_2", "| IMG_1"]  # the worst first, the perfect one left out
    assert "| IMG_1 | 1 | 0.700 | 0.900 | 0.500 | 90.9% | 9.1% |" in text


def test_errors_without_evaluations_says_so(tmp_path):
    assert "no fold-*/evaluation.json" in bench_accuracy.errors(tmp_path)


def test_an_unknown_variant_is_refused(capsys):
    assert bench_accuracy.main(["--variants", "nosuch", "--report"]) == 2
    assert "unknown variants ['nosuch']" in capsys.readouterr().err


def test_errors_of_a_variant_not_done_says_so(tmp_path, capsys):
    # reading results needs no images: --data points at an empty folder
    assert bench_accuracy.main(["--errors", "--variants", "recipe", "--budget", "45",
                                "--data", str(tmp_path),
                                "--out", str(tmp_path / "out")]) == 0
    assert "recipe: not cross-validated at 45 min" in capsys.readouterr().err
    assert not (tmp_path / "out" / "45min" / "recipe" / "errors.md").exists()


def test_the_report_needs_results_not_images(tmp_path, capsys):
    root = tmp_path / "out" / "45min" / "recipe"
    root.mkdir(parents=True)
    fold = {"miou": 0.8, "ece": 0.01, "epochs_run": 9, "iou": {"soil": 0.9, "weed": 0.7}}
    (root / "cv.json").write_text(json.dumps({
        "variant": "recipe", "changes": "the recipe", "classes": ["soil", "weed"],
        "per_fold": [fold, fold], "mean": {"miou": 0.8, "iou": fold["iou"]},
        "std": {"miou": 0.0, "iou": {"soil": 0.0, "weed": 0.0}}, "wall_seconds": 120.0}))
    assert bench_accuracy.main(["--report", "--budget", "45", "--data", str(tmp_path / "none"),
                                "--out", str(tmp_path / "out")]) == 0
    assert "| recipe | 0.8000 ± 0.0000 |" in capsys.readouterr().out


def _cv_with_one_fold(root, fields, make_checkpoint):
    """A cross-validated variant of one fold (trained on f0, f1; f2 held out) whose model is
    a random per-pixel network, scored on f2 as cross_validate scores it."""
    variant = root / "recipe"
    (variant / "fold-1").mkdir(parents=True)
    model = make_checkpoint("recipe/fold-1/last.safetensors")
    evaluate_model([fields / "f2.tif"], fields, model=model,
                   out_json=variant / "fold-1" / "evaluation.json")
    (variant / "cv.json").write_text(json.dumps({
        "classes": ["soil", "crop", "weed"],
        "per_fold": [{"fold": 1, "train": ["/elsewhere/f0.tif", "/elsewhere/f1.tif"],
                      "validation": ["/elsewhere/f2.tif"]}]}))
    return variant, model


def test_fit_scores_each_fold_on_its_own_training_images(tmp_path, fields, make_checkpoint):
    variant, model = _cv_with_one_fold(tmp_path, fields, make_checkpoint)
    text = bench_accuracy.fit(variant, fields)
    train = evaluate_model([fields / "f0.tif", fields / "f1.tif"], fields, model=model)
    held = evaluate_model([fields / "f2.tif"], fields, model=model)
    fit_json = json.loads((variant / "fold-1" / "fit.json").read_text())
    # the training images of the fold, found in --data by name, not the held-out one
    assert [r["image"].rsplit("/", 1)[-1] for r in fit_json["per_image"]] == ["f0.tif", "f1.tif"]
    assert fit_json["overall"]["miou"] == train["overall"]["miou"]
    gap = train["overall"]["miou"] - held["overall"]["miou"]
    assert (f"| 1 | 2/1 | {train['overall']['miou']:.4f} | {held['overall']['miou']:.4f} | "
            f"{gap:+.4f} |") in text
    assert f"mean gap train - held out {gap:+.4f} mIoU over 1 folds" in text
    # resumable: a fold scored before is read back, not scored again
    fit_json["overall"]["miou"] = 0.5
    (variant / "fold-1" / "fit.json").write_text(json.dumps(fit_json))
    assert "| 1 | 2/1 | 0.5000 |" in bench_accuracy.fit(variant, fields)


def test_fit_refuses_a_fold_whose_training_images_are_missing(tmp_path, fields,
                                                              make_checkpoint):
    variant, _ = _cv_with_one_fold(tmp_path, fields, make_checkpoint)
    only_f0 = tmp_path / "data"
    only_f0.mkdir()
    for name in ("f0.tif", "f0_labels.tif"):
        (only_f0 / name).write_bytes((fields / name).read_bytes())
    with pytest.raises(SystemExit, match="1 of fold 1's 2 training images are not in .*f1.tif"):
        bench_accuracy.fit(variant, only_f0)
    assert not (variant / "fold-1" / "fit.json").exists()


def test_edges_splits_the_held_out_errors_by_distance_to_a_label_boundary(
        tmp_path, fields, make_checkpoint):
    variant, model = _cv_with_one_fold(tmp_path, fields, make_checkpoint)
    text = bench_accuracy.edges(variant, fields, radii=(1, 2))
    pred_path = variant / "fold-1" / "predictions" / "f2.tif"
    with rasterio.open(pred_path) as src:
        pred = src.read(1)
    with rasterio.open(fields / "f2_labels.tif") as src:
        labels = src.read(1)
    err = pred != labels  # the squares field is labelled everywhere
    assert 0 < err.sum() < err.size
    held = evaluate_model([fields / "f2.tif"], fields, model=model)["overall"]
    assert f"| all | 100% | 100% | {held['miou']:.4f} |" in text  # scored as evaluate scores
    for r in (1, 2):
        # computed another way: a pixel is within r px of a boundary when the chessboard
        # distance to the nearest pixel of another class is at most r
        dist = np.zeros(labels.shape)
        for c in np.unique(labels):
            inside = labels == c
            dist[inside] = ndimage.distance_transform_cdt(inside, metric="chessboard")[inside]
        band = dist <= r
        assert (f"| farther than {r} px from a label boundary | "
                f"{100 * (1 - band.mean()):.1f}% | "
                f"{100 * (1 - (err & band).sum() / err.sum()):.1f}% |") in text
    assert "| 3x3 |" in text and "| 5x5 |" in text
    # predictions are kept and read back, not made again
    stamp = pred_path.stat().st_mtime_ns
    assert bench_accuracy.edges(variant, fields, radii=(1, 2)) == text
    assert pred_path.stat().st_mtime_ns == stamp


def test_edges_majority_filter_keeps_straight_label_edges_and_cuts_corners(
        tmp_path, make_checkpoint):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    write_raster(data / "f2.tif", rng.integers(0, 255, (3, 64, 64)).astype(np.uint8),
                 descriptions=("red", "green", "blue"))
    labels = np.zeros((1, 64, 64), np.uint8)
    labels[:, 20:, :] = 1
    labels[:, 40:, 30:] = 2  # straight edges and right-angled corners only
    write_raster(data / "f2_labels.tif", labels, nodata=255)
    variant, _ = _cv_with_one_fold(tmp_path, data, make_checkpoint)
    text = bench_accuracy.edges(variant, data, radii=(1,))
    # a 3x3 majority keeps straight edges; a right-angled corner pixel has 4 of 9 of its own
    # class and flips, so only the one corner of class 2 (at row 40, col 30) changes
    assert "| 3x3 | " in text
    row = next(line for line in text.splitlines() if line.startswith("| 3x3 |"))
    soil, crop, weed = (float(v) for v in row.strip("| ").split(" | ")[2:])
    assert soil == 1.0 and crop < 1.0 and weed < 1.0
    assert weed == round(1 - 1 / (24 * 34), 4)


def test_the_modes_that_train_nothing_are_one_at_a_time(capsys):
    with pytest.raises(SystemExit) as e:
        bench_accuracy.main(["--fit", "--edges", "--variants", "recipe"])
    assert e.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
