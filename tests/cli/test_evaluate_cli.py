"""``agriseg evaluate`` and ``evaluate_model``: the confusion equals predict's mask vs labels."""

import json

import numpy as np
import pytest
import rasterio
from cli_helpers import assert_bad_input, run
from conftest import write_raster

from agriseg.infer.pipeline import predict_raster
from agriseg.jobs.evaluate import evaluate_model
from agriseg.samples import pair_samples


def pair_inputs(images, labels):
    return [(s.image, s.labels) for s in pair_samples(images, labels)]

W, H = 130, 90
PATCH = ("--patch-size", 64, "--overlap", 16)


def expected_confusion(mask, labels, n=3):
    keep = (labels != 255) & (mask != 255)
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (labels[keep].astype(int), mask[keep].astype(int)), 1)
    return m


def labels_for(path, seed, unknown=0.1):
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 3, (1, H, W)).astype(np.uint8)
    lab[rng.random((1, H, W)) < unknown] = 255
    return write_raster(path, lab), lab[0]


@pytest.fixture
def ckpt(make_checkpoint):
    return make_checkpoint()


@pytest.fixture
def scene(make_raster, tmp_path):
    """Two images (one with a no-data corner) and label rasters named after them."""
    data = np.random.default_rng(5).integers(1, 256, (3, H, W)).astype(np.uint8)
    data[:, :20, :30] = 0
    img1 = make_raster("IMG_1.tif", width=W, height=H, seed=1)
    img2 = make_raster("IMG_2.tif", data=data, nodata=0)
    (tmp_path / "labels").mkdir()
    lab1, arr1 = labels_for(tmp_path / "labels" / "IMG_1_labels.tif", 1)
    lab2, arr2 = labels_for(tmp_path / "labels" / "IMG_2_labels.tif", 2)
    return [(img1, lab1, arr1), (img2, lab2, arr2)]


def reference(img, ckpt, labels, out):
    predict_raster(img, out, model=ckpt, patch_px=64, overlap_px=16, device="cpu")
    with rasterio.open(out) as ds:
        mask = ds.read(1)
    return expected_confusion(mask, labels), mask


def test_evaluate_model_matches_predict_raster_vs_labels(scene, ckpt, tmp_path):
    refs = [reference(img, ckpt, arr, tmp_path / f"ref{i}.tif")
            for i, (img, _, arr) in enumerate(scene)]
    assert (refs[1][1] == 255).sum() == 20 * 30  # image no-data is not counted
    result = evaluate_model([s[0] for s in scene], [s[1] for s in scene], model=ckpt, patch_px=64,
                            overlap_px=16, device="cpu", batch_size=4,
                            out_json=tmp_path / "m.json")
    for (expected, _), item in zip(refs, result["per_image"], strict=True):
        assert np.array_equal(item["confusion"], expected)
    total = refs[0][0] + refs[1][0]
    assert np.array_equal(result["overall"]["confusion"], total)
    assert result["overall"]["pixel_accuracy"] == pytest.approx(np.trace(total) / total.sum())
    assert result["classes"] == ["soil", "crop", "weed"]
    on_disk = json.loads((tmp_path / "m.json").read_text(), parse_constant=_no_nan)
    assert on_disk["overall"]["confusion"] == total.tolist()
    assert not list(tmp_path.glob("*.part*"))


def _no_nan(name):
    raise AssertionError(f"{name} in JSON output")


def test_polygon_labels_for_all_images(make_raster, ckpt, tmp_path):
    import geopandas as gpd
    from conftest import ORIGIN
    from shapely.geometry import box

    img = make_raster("field.tif", width=W, height=H, seed=3)
    x0, y0 = ORIGIN  # pixel-aligned box: columns 10..49, rows 20..59 are class 2
    poly = box(x0 + 0.10, y0 - 0.60, x0 + 0.50, y0 - 0.20)
    gpd.GeoDataFrame({"kind": [2]}, geometry=[poly], crs="EPSG:32634").to_file(
        tmp_path / "plants.gpkg")
    truth = np.zeros((H, W), dtype=np.uint8)
    truth[20:60, 10:50] = 2
    expected, _ = reference(img, ckpt, truth, tmp_path / "ref.tif")
    result = evaluate_model(img, tmp_path / "plants.gpkg", model=ckpt, label_field="kind",
                            patch_px=64, overlap_px=16, device="cpu")
    assert np.array_equal(result["overall"]["confusion"], expected)
    assert result["overall"]["support"] == [W * H - 1600, 0, 1600]


def test_pairing_by_folder_stem_and_by_order(scene, tmp_path):
    from agriseg.errors import ConfigError

    (img1, lab1, _), (img2, lab2, _) = scene
    by_folder = pair_inputs([img2, img1], tmp_path / "labels")
    assert sorted(by_folder) == sorted([(img1, lab1), (img2, lab2)])
    odd = tmp_path / "other.tif"
    odd.write_bytes(lab2.read_bytes())
    with pytest.raises(ConfigError, match="IMG_2.tif"):  # IMG_1 pairs by name: no order guess
        pair_inputs([img1, img2], [lab1, odd])
    assert pair_inputs([img2, img1], [lab1, lab2]) == [(img2, lab2), (img1, lab1)]
    mosaic = tmp_path / "mosaic.tif"
    mosaic.write_bytes(lab1.read_bytes())
    assert pair_inputs([img1, img2], mosaic) == [(img1, mosaic), (img2, mosaic)]


def test_cli_prints_table_and_writes_json(scene, ckpt, tmp_path):
    out = tmp_path / "metrics.json"
    r = run("-q", "evaluate", "-m", ckpt, "--images", scene[0][0], scene[1][0],
            "--labels", tmp_path / "labels", "-o", out, *PATCH, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "IMG_1.tif: mIoU" in r.output and "IMG_2.tif: mIoU" in r.output
    header = next(ln for ln in r.output.splitlines() if ln.startswith("class"))
    assert header.split() == ["class", "IoU", "F1", "precision", "recall", "support"]
    for word in ("soil", "crop", "weed", "mIoU", "pixel accuracy", "rows = truth"):
        assert word in r.output
    saved = json.loads(out.read_text(), parse_constant=_no_nan)
    assert saved["images"] == 2 and len(saved["per_image"]) == 2
    assert f"{saved['overall']['miou']:.4f}" in r.output
    r = run("-q", "evaluate", "-m", ckpt, "--images", scene[0][0], "--labels", scene[0][1],
            *PATCH, "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["per_image"][0]["labels"] == str(scene[0][1])


def test_cli_missing_label_file(scene, ckpt, tmp_path):
    r = run("evaluate", "-m", ckpt, "--images", scene[0][0], scene[1][0],
            "--labels", scene[0][1], tmp_path / "nope_labels.tif")
    assert_bad_input(r, "nope_labels.tif", "not found")


def test_cli_mismatched_counts(scene, ckpt, tmp_path):
    extra = tmp_path / "extra.tif"
    extra.write_bytes(scene[0][1].read_bytes())
    r = run("evaluate", "-m", ckpt, "--images", scene[0][0],
            "--labels", scene[1][1], extra)
    assert_bad_input(r, "1 image(s) but 2 label file(s)")
    r = run("evaluate", "-m", ckpt, "--images", scene[0][0], scene[1][0],
            "--labels", scene[0][1])  # IMG_1_labels.tif cannot also label IMG_2.tif
    assert_bad_input(r, "2 image(s) but 1 label file(s)")


def test_cli_no_label_for_image_in_folder(scene, ckpt, tmp_path):
    (tmp_path / "labels" / "IMG_2_labels.tif").unlink()
    r = run("evaluate", "-m", ckpt, "--images", scene[0][0], scene[1][0],
            "--labels", tmp_path / "labels")
    assert_bad_input(r, "IMG_2.tif", "no labels found")


def test_cli_label_value_outside_model_classes(make_raster, ckpt, tmp_path):
    img = make_raster("field.tif", width=W, height=H)
    lab = write_raster(tmp_path / "field_labels.tif", np.full((1, H, W), 7, dtype=np.uint8))
    r = run("-q", "evaluate", "-m", ckpt, "--images", img, "--labels", lab, *PATCH)
    assert_bad_input(r, "field_labels.tif", "label value 7", "0 soil, 1 crop, 2 weed")


def test_ambiguous_label_names_are_an_error_not_a_positional_guess(tmp_path):
    """[a, b] with [a_labels, a_mask]: both name a, none names b; never (b, a_mask)."""
    from agriseg.errors import ConfigError

    files = {n: tmp_path / f"{n}.tif" for n in ("a", "b", "a_labels", "a_mask")}
    for p in files.values():
        p.write_bytes(b"")
    with pytest.raises(ConfigError, match="several label files"):
        pair_inputs([files["a"], files["b"]], [files["a_labels"], files["a_mask"]])


def test_order_fallback_only_when_no_name_matches(tmp_path, caplog):
    from agriseg.errors import ConfigError

    files = {n: tmp_path / f"{n}.tif" for n in ("a", "b", "a_labels", "x", "y")}
    for p in files.values():
        p.write_bytes(b"")
    with caplog.at_level("WARNING", logger="agriseg"):
        pairs = pair_inputs([files["a"], files["b"]], [files["x"], files["y"]])
    assert pairs == [(files["a"], files["x"]), (files["b"], files["y"])]
    assert "order" in caplog.text
    with pytest.raises(ConfigError, match="b.tif"):  # a matches by name, so b must too
        pair_inputs([files["a"], files["b"]], [files["a_labels"], files["x"]])


@pytest.mark.parametrize("args,expected", [
    (["--images", "a", "b", "--labels", "c", "-m", "m"],
     ["--images", "a", "--images", "b", "--labels", "c", "-m", "m"]),
    (["--images=a", "b", "--json"], ["--images=a", "--images", "b", "--json"]),
    (["-m", "m", "--images", "a", "--", "b"], ["-m", "m", "--images", "a", "--", "b"]),
])
def test_several_paths_after_one_flag(args, expected):
    from agriseg.cli.evaluate import spread_values

    assert spread_values(args, ("--images", "--labels")) == expected


def test_evaluate_reports_ece_of_predict_confidence(scene, ckpt, tmp_path):
    """``ece`` equals the calibration error computed directly from predict's mask and
    confidence rasters against the labels (15 equal-width bins, labelled pixels only)."""
    result = evaluate_model([s[0] for s in scene], [s[1] for s in scene], model=ckpt,
                            patch_px=64, overlap_px=16, device="cpu")
    preds, confs, truths = [], [], []
    for i, (img, _, arr) in enumerate(scene):
        predict_raster(img, tmp_path / f"r{i}.tif", model=ckpt, patch_px=64, overlap_px=16,
                       device="cpu", confidence=tmp_path / f"c{i}.tif")
        with rasterio.open(tmp_path / f"r{i}.tif") as m, \
                rasterio.open(tmp_path / f"c{i}.tif") as c:
            preds.append(m.read(1).ravel())
            confs.append(c.read(1).ravel())
            truths.append(arr.ravel())
    pred, conf, truth = (np.concatenate(a) for a in (preds, confs, truths))
    keep = (truth != 255) & (pred != 255)
    pred, conf, truth = pred[keep], conf[keep] / 100.0, truth[keep]
    bins = np.minimum((conf * 15).astype(int), 14)
    ece = sum(abs((pred[bins == b] == truth[bins == b]).mean() - conf[bins == b].mean())
              * (bins == b).sum() for b in np.unique(bins)) / keep.sum()
    assert 0 < ece < 1
    assert result["overall"]["ece"] == pytest.approx(ece, abs=1e-9)
    assert result["overall"]["ece_bins"] == 15
    assert all(0 <= item["ece"] <= 1 for item in result["per_image"])


def test_evaluate_cli_tta_and_ece_line(scene, ckpt, tmp_path):
    r = run("-q", "evaluate", "-m", ckpt, "--images", scene[0][0], "--labels",
            tmp_path / "labels", *PATCH, "--device", "cpu", "--tta", "d4", "--json")
    assert r.exit_code == 0, r.output
    saved = json.loads(r.output)
    assert saved["params"]["tta"] == "d4"
    plain = evaluate_model(scene[0][0], tmp_path / "labels", model=ckpt, patch_px=64,
                           overlap_px=16, device="cpu")
    # the per-pixel test model commutes with flips: d4 scores what plain prediction scores
    assert saved["overall"]["confusion"] == plain["overall"]["confusion"]
    r = run("-q", "evaluate", "-m", ckpt, "--images", scene[0][0], "--labels",
            tmp_path / "labels", *PATCH, "--device", "cpu")
    assert "calibration error" in r.output
    bad = run("evaluate", "-m", ckpt, "--images", scene[0][0], "--labels",
              tmp_path / "labels", "--tta", "spin")
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "Error: Invalid value for '--tta': 'spin' is not one of 'none', 'flips', 'd4'" \
        in bad.output
