"""``bench_accuracy``'s reading of finished runs (the training is the bench's own)."""

import json

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
