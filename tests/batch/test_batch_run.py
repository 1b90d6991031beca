"""run_batch with the local executor: idempotence, change detection, failure isolation,
retries, timeouts, --min-age, the lock, reports and the index. Real worker processes."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import shapely
from batch_helpers import faulty_task, field, leftovers, snapshot
from pyproj import Transformer

from agriseg.batch.inputs import path_hash
from agriseg.batch.run import run_batch
from agriseg.batch.state import RECORD_NAME, outroot_lock
from agriseg.errors import ConfigError, InputNotFoundError, OutputError

OLD = time.time() - 3600


def _fields(folder: Path, names, seed0: int = 0) -> list[Path]:
    paths = [field(folder / n, seed=seed0 + i) for i, n in enumerate(names)]
    for p in paths:
        os.utime(p, (OLD, OLD))
    return paths


def _report(result) -> list[dict]:
    with open(result.run_dir / "report.csv", newline="") as f:
        return list(csv.DictReader(f))


def _status(result) -> dict[str, str]:
    return {r["folder"]: r["status"] for r in result.rows}


def test_rerun_recomputes_nothing_and_changes_recompute_exactly_the_affected(
        make_checkpoint, tmp_path):
    ckpt = make_checkpoint()
    inbox = tmp_path / "in"
    _fields(inbox, ["a.tif", "b.tif", "sub/c.tif"])
    out = tmp_path / "maps"
    first = run_batch([inbox], out, model=ckpt)
    assert _status(first) == {"a": "done", "b": "done", "sub__c": "done"}
    assert first.exit_code == 0
    for key in ("a", "b", "sub__c"):
        assert {"mask.tif", "confidence.tif", "fields.gpkg", "summary.json", "README.txt",
                RECORD_NAME} <= {p.name for p in (out / key).iterdir()}
    before = snapshot(out)

    again = run_batch([inbox], out, model=ckpt)
    assert _status(again) == {"a": "skipped", "b": "skipped", "sub__c": "skipped"}
    assert snapshot(out) == before  # same inodes, mtimes and bytes: nothing was rewritten
    assert again.run_dir != first.run_dir

    # a manifest changes one raster's parameter: only that one is redone
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,min_area_m2\nin/a.tif,\nin/b.tif,0.0004\n")
    third = run_batch([manifest], out, model=ckpt)
    assert _status(third) == {"a": "skipped", "b": "done"}
    assert third.rows[1]["reason"] == "parameters changed (min_area_m2)"

    # the input changes (new mtime): redone; a new model: all redone
    os.utime(inbox / "a.tif", (OLD + 60, OLD + 60))
    fourth = run_batch([inbox], out, model=ckpt)
    assert _status(fourth)["a"] == "done"
    assert {r["folder"]: r["reason"] for r in fourth.rows}["a"] == "input changed"
    fifth = run_batch([inbox], out, model=make_checkpoint("other.safetensors", seed=3))
    assert set(_status(fifth).values()) == {"done"}
    assert {r["reason"] for r in fifth.rows} == {"model changed"}
    assert leftovers(out) == []


def test_hash_fingerprint_ignores_a_touch_and_force_redoes_all(make_checkpoint, tmp_path):
    ckpt = make_checkpoint()
    (a,) = _fields(tmp_path / "in", ["a.tif"])
    out = tmp_path / "maps"
    run_batch([a], out, model=ckpt, use_hash=True)
    os.utime(a, (OLD + 99, OLD + 99))  # same bytes, new mtime
    assert _status(run_batch([a], out, model=ckpt, use_hash=True)) == {"a": "skipped"}
    assert _status(run_batch([a], out, model=ckpt)) == {"a": "done"}  # size+mtime differ
    forced = run_batch([a], out, model=ckpt, force=True)
    assert forced.rows[0]["status"] == "done"
    assert forced.rows[0]["reason"] == "forced (--force)"


def test_a_corrupt_raster_and_a_dying_worker_do_not_stop_the_others(make_checkpoint,
                                                                     tmp_path):
    ckpt = make_checkpoint()
    inbox = tmp_path / "in"
    _fields(inbox, ["a.tif", "crash.tif", "b.tif"])
    (inbox / "corrupt.tif").write_bytes(b"II*\x00 not really a tiff")
    out = tmp_path / "maps"
    result = run_batch([inbox], out, model=ckpt, task_fn=faulty_task)
    assert _status(result) == {"a": "done", "b": "done", "corrupt": "failed", "crash": "failed"}
    assert result.exit_code == 1
    reasons = {r["folder"]: r["reason"] for r in _report(result)}
    assert "not a readable raster" in reasons["corrupt"]
    assert "worker process died (exit code 3)" in reasons["crash"]
    assert not (out / "crash").exists() and not (out / "corrupt").exists()
    assert leftovers(out) == []
    log = (result.run_dir / "batch.log").read_text()
    assert "crash.tif: failed: worker process died" in log


def test_retries_transient_failures_only_and_timeout_stops_a_hung_raster(make_checkpoint,
                                                                        tmp_path):
    ckpt = make_checkpoint()
    inbox = tmp_path / "in"
    _fields(inbox, ["flaky.tif", "hang.tif", "ok.tif"])
    (inbox / "corrupt.tif").write_bytes(b"garbage")
    out = tmp_path / "maps"
    t0 = time.monotonic()
    result = run_batch([inbox], out, model=ckpt, task_fn=faulty_task, retries=1, timeout=4,
                       jobs=2)
    assert time.monotonic() - t0 < 120
    rows = {r["folder"]: r for r in result.rows}
    assert rows["flaky"]["status"] == "done" and rows["flaky"]["attempts"] == 2
    assert rows["ok"]["status"] == "done" and rows["ok"]["attempts"] == 1
    assert rows["hang"]["status"] == "failed" and rows["hang"]["attempts"] == 2
    assert rows["hang"]["reason"].startswith("timed out after 4 s")
    assert rows["corrupt"]["status"] == "failed" and rows["corrupt"]["attempts"] == 1
    assert result.exit_code == 1


def test_min_age_leaves_a_fresh_file_for_the_next_run(make_checkpoint, tmp_path):
    ckpt = make_checkpoint()
    inbox = tmp_path / "in"
    _fields(inbox, ["old.tif"])
    field(inbox / "fresh.tif", seed=5)  # just written: still being copied, as far as we know
    out = tmp_path / "maps"
    result = run_batch([inbox], out, model=ckpt, min_age_s=600)
    assert _status(result) == {"old": "done", "fresh": "too-new"}
    assert result.exit_code == 0
    row = {r["folder"]: r for r in _report(result)}["fresh"]
    assert "under --min-age 600 s" in row["reason"]
    assert not (out / "fresh").exists()
    os.utime(inbox / "fresh.tif", (OLD, OLD))
    assert _status(run_batch([inbox], out, model=ckpt, min_age_s=600)) == \
        {"old": "skipped", "fresh": "done"}


def test_a_second_run_on_the_same_root_is_refused(make_checkpoint, tmp_path):
    (a,) = _fields(tmp_path / "in", ["a.tif"])
    out = tmp_path / "maps"
    with outroot_lock(out), pytest.raises(OutputError, match="another batch is running"):
        run_batch([a], out, model=make_checkpoint())
    assert _status(run_batch([a], out, model=make_checkpoint())) == {"a": "done"}


def test_report_and_index(make_checkpoint, tmp_path):
    ckpt = make_checkpoint()
    inbox = tmp_path / "in"
    _fields(inbox, ["a.tif", "b.tif"])
    out = tmp_path / "maps"
    result = run_batch([inbox / "a.tif"], out, model=ckpt)
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["run"]["counts"] == {"done": 1, "skipped": 0, "failed": 0, "too-new": 0}
    row = _report(result)[0]
    summary = json.loads((out / "a" / "summary.json").read_text())
    crop = summary["classes"]["crop"]["area_ha_pixels"]
    assert float(row["crop_ha"]) == pytest.approx(crop, rel=1e-5)
    assert int(row["polygons"]) == summary["polygons"] > 0
    assert float(row["mpx_per_s"]) > 0 and float(row["seconds"]) > 0

    run_batch([inbox], out, model=ckpt)  # adds b; a stays in the index
    index = gpd.read_file(out / "index.gpkg")
    assert index.crs.to_epsg() == 4326
    assert sorted(index["folder"]) == ["a", "b"]
    with rasterio.open(inbox / "a.tif") as src:
        to_wgs84 = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
        corners = [to_wgs84.transform(x, y) for x, y in
                   [(src.bounds.left, src.bounds.bottom), (src.bounds.right, src.bounds.top)]]
    footprint = index.set_index("folder").geometry["a"]
    for x, y in corners:
        assert footprint.distance(shapely.Point(x, y)) < 1e-9
    assert index.set_index("folder")["polygons_file"]["a"] == "a/fields.gpkg"


def test_same_file_names_in_different_folders_never_collide(make_checkpoint, tmp_path):
    ckpt = make_checkpoint()
    a = field(tmp_path / "x" / "f.tif", seed=1)
    b = field(tmp_path / "y" / "f.tif", seed=2)
    os.utime(a, (OLD, OLD))
    os.utime(b, (OLD, OLD))
    out = tmp_path / "maps"
    one = run_batch([a], out, model=ckpt)  # alone: plain name
    assert _status(one) == {"f": "done"}
    two = run_batch([b], out, model=ckpt)  # same name, other raster: its own folder
    (key,) = _status(two)
    assert key.startswith("f-") and _status(two)[key] == "done"
    assert _status(run_batch([a], out, model=ckpt)) == {"f": "skipped"}
    both = run_batch([a, b], out, model=ckpt)  # each keeps the folder it owns
    assert _status(both) == {"f": "skipped", key: "skipped"}
    fresh = run_batch([b, a], tmp_path / "maps2", model=ckpt)  # one run, two rasters, one name
    assert _status(fresh) == {"f": "done", f"f-{path_hash(a.resolve())}": "done"}
    assert json.loads((tmp_path / "maps2" / "f" / "summary.json").read_text())["input"][
        "path"] == str(b.resolve())


def test_usage_errors_are_raised_before_any_work(make_checkpoint, tmp_path):
    (a,) = _fields(tmp_path / "in", ["a.tif"])
    out = tmp_path / "maps"
    with pytest.raises(InputNotFoundError, match="no such raster"):
        run_batch([tmp_path / "missing.tif"], out)
    with pytest.raises(ConfigError, match="not both"):
        run_batch([a], out, workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ConfigError, match="local executor only"):
        run_batch([a], out, workers=1, timeout=5)
    with pytest.raises(ConfigError, match="blend"):
        run_batch([a], out, blend="nearest")
    with pytest.raises(ConfigError, match="no such model"):
        run_batch([a], out, model=tmp_path / "nope.safetensors")
    assert not out.exists()


def test_manifest_rows_choose_their_own_model_and_format(make_checkpoint, tmp_path):
    base = make_checkpoint()
    other = make_checkpoint("other.safetensors", seed=7)
    _fields(tmp_path / "in", ["a.tif", "b.tif"])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,model,format\nin/a.tif,other.safetensors,shp\nin/b.tif,,\n")
    out = tmp_path / "maps"
    first = run_batch([manifest], out, model=base)
    assert _status(first) == {"a": "done", "b": "done"}
    assert (out / "a" / "fields.shp").is_file() and (out / "b" / "fields.gpkg").is_file()
    models = {k: json.loads((out / k / "summary.json").read_text())["model"]["path"]
              for k in ("a", "b")}
    assert models == {"a": str(other.resolve()), "b": str(base.resolve())}
    index = gpd.read_file(out / "index.gpkg").set_index("folder")
    assert index.loc["a", "polygons_file"] == "a/fields.shp"
    assert _status(run_batch([manifest], out, model=base)) == {"a": "skipped", "b": "skipped"}
    # the batch's own model changes: only the row that uses it is redone
    again = run_batch([manifest], out, model=make_checkpoint("third.safetensors", seed=9))
    assert _status(again) == {"a": "skipped", "b": "done"}


def test_backend_and_adaptation_options_reach_the_workers(make_checkpoint, tmp_path):
    ckpt = make_checkpoint()
    _fields(tmp_path / "in", ["a.tif"])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,batch_size\nin/a.tif,auto\n")
    out = tmp_path / "maps"
    run_batch([manifest], out, model=ckpt, backend="torch", resample="off", input_range="model")
    params = json.loads((out / "a" / "summary.json").read_text())["parameters"]
    assert (params["backend_used"], params["resample"], params["input_range"]) == \
        ("torch", "off", "model")
    assert params["batch_size"] == "auto" and params["batch_size_used"] == 1
    # the thread count does not change a map: nothing to redo...
    assert _status(run_batch([manifest], out, model=ckpt, backend="torch", resample="off",
                             input_range="model", threads=1)) == {"a": "skipped"}
    # ...the backend may (by a pixel in a million): the raster is mapped again
    redo = run_batch([manifest], out, model=ckpt, backend="onnx", resample="off",
                     input_range="model")
    assert _status(redo) == {"a": "done"}
    params = json.loads((out / "a" / "summary.json").read_text())["parameters"]
    assert params["backend_used"] == "onnx"


def test_manifest_tta_column_and_batch_option(make_checkpoint, tmp_path):
    """A row's ``tta`` reaches its map (and changes the fingerprint: it is redone); a row
    with a bad value fails, with the allowed values in its error, as other bad rows do."""
    ckpt = make_checkpoint()
    _fields(tmp_path / "in", ["a.tif", "b.tif"])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,tta\nin/a.tif,d4\nin/b.tif,\n")
    out = tmp_path / "maps"
    first = run_batch([manifest], out, model=ckpt, tta="flips")
    assert _status(first) == {"a": "done", "b": "done"}
    tta = {k: json.loads((out / k / "summary.json").read_text())["parameters"]["tta"]
           for k in ("a", "b")}
    assert tta == {"a": "d4", "b": "flips"}
    assert _status(run_batch([manifest], out, model=ckpt)) == {"a": "skipped", "b": "done"}
    manifest.write_text("path,tta\nin/a.tif,spin\n")
    bad = run_batch([manifest], tmp_path / "other")
    assert _status(bad) == {"a": "failed"}
    (row,) = bad.rows
    assert "unknown test-time augmentation 'spin'; use one of none, flips, d4" in row["reason"]
