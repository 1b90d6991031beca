"""``make bench-models``' measurement and table code (the training part runs in the bench)."""

from bench import bench_models


def test_an_architecture_is_measured_from_its_config():
    row = bench_models.run(["ppm"], train=False, epochs=0, windows=0, minutes=0,
                           repeats=1)[0]
    assert row["arch"] == "ppm" and row["encoder"] == "resnet18"
    assert row["params_m"] > 1 and row["gflops_512"] > 1
    assert row["ms_per_patch_b1"] > 0 and row["ms_per_patch_b8"] > 0


def test_re_measuring_keeps_the_trained_scores_and_the_registry_order(tmp_path, monkeypatch):
    old = [{"arch": "unet", "ms_per_patch_b1": 9, "val_miou": 0.7, "budget": "4 epochs"},
           {"arch": "deeplab", "ms_per_patch_b1": 8, "val_miou": 0.6, "budget": "4 epochs"}]
    new = [{"arch": "unet", "ms_per_patch_b1": 5}, {"arch": "fpn", "ms_per_patch_b1": 3}]
    merged = bench_models.merge(old, new)
    assert [r["arch"] for r in merged] == ["fpn", "deeplab", "unet"]  # registry order
    assert merged[2] == {"arch": "unet", "ms_per_patch_b1": 5, "val_miou": 0.7,
                         "budget": "4 epochs"}
    monkeypatch.setattr(bench_models, "DOC", tmp_path / "models.md")
    for r in merged:
        r.update(params_m=1.0, gflops_512=2.0, ms_per_patch_b8=1)
    bench_models.write_doc(merged)
    text = (tmp_path / "models.md").read_text()
    assert "after 4 epochs, the same for all" in text
    assert "| fpn | 1.0 | 2.0 | 3 | 1 | - | - |" in text
    assert "| unet | 1.0 | 2.0 | 5 | 1 | 0.700 |" in text
