"""What a batch maps: folders, globs, manifests, folder names, leftovers; the schedule files."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from agriseg.batch.inputs import find_rasters, path_hash
from agriseg.batch.state import (
    clean_leftovers,
    input_fingerprint,
    parameters_fingerprint,
    why_redo,
)
from agriseg.cli.main import cli
from agriseg.errors import ConfigError, InputNotFoundError

ROOT = Path(__file__).resolve().parents[2]


def _touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_folders_globs_and_files(tmp_path):
    inbox = tmp_path / "in"
    _touch(inbox / "a.tif", inbox / "farm" / "b.TIFF", inbox / "farm" / "notes.txt",
           inbox / ".hidden.tif", inbox / ".cache" / "c.tif", inbox / "maps" / "m" / "mask.tif",
           tmp_path / "other" / "d.tif")
    items = find_rasters([inbox], exclude=inbox / "maps")  # the output root inside the inbox
    assert [(i.path.relative_to(inbox).as_posix(), i.key) for i in items] == [
        ("a.tif", "a"), ("farm/b.TIFF", "farm__b")]
    items = find_rasters([str(tmp_path / "*" / "*.tif"), tmp_path / "other" / "d.tif",
                          inbox / "a.tif"])
    assert [i.key for i in items] == ["a", "d"]  # each raster once, first mention wins
    with pytest.raises(InputNotFoundError, match="missing.tif: no such raster"):
        find_rasters([tmp_path / "missing.tif"])
    assert find_rasters([str(tmp_path / "nothing-*.tif")]) == []
    reserved = find_rasters([_make(tmp_path / "x" / "runs.tif")])
    assert reserved[0].key == f"runs-{path_hash(tmp_path / 'x' / 'runs.tif')}"


def _make(p: Path) -> Path:
    _touch(p)
    return p


def test_manifest_columns_paths_and_errors(tmp_path):
    _touch(tmp_path / "fields" / "a.tif", tmp_path / "fields" / "b.tif", tmp_path / "m.safetensors")
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,model,bands,patch_px,min_area_m2,classes,format\n"
                        "fields/a.tif,m.safetensors,3;2;1,256,0.5,weed,shp\n"
                        "fields/b.tif,,,,,,\n\n")
    a, b = find_rasters([manifest])
    assert a.path == tmp_path / "fields" / "a.tif" and b.overrides == {}
    assert a.overrides == {"model": str(tmp_path / "m.safetensors"), "bands": (3, 2, 1),
                           "patch_px": 256, "min_area_m2": 0.5, "classes": ("weed",),
                           "format": "shp"}
    for text, words in (("name\nx.tif\n", "needs a 'path' column"),
                        ("path,colour\nfields/a.tif,red\n", "unknown manifest column"),
                        ("path,patch_px\nfields/a.tif,big\n", "line 2: bad patch_px 'big'"),
                        ("path,format\nfields/a.tif,kml\n", "bad format 'kml'")):
        manifest.write_text(text)
        with pytest.raises(ConfigError, match=words):
            find_rasters([manifest])
    manifest.write_text("path\nfields/zzz.tif\n")
    with pytest.raises(InputNotFoundError, match="line 2: .*zzz.tif: no such raster"):
        find_rasters([manifest])


def test_why_redo_names_the_change(tmp_path):
    raster = _make(tmp_path / "a.tif")
    fp = input_fingerprint(raster)
    params = parameters_fingerprint({"min_area_m2": 0.0, "batch_size": 8, "device": "cpu"})
    assert params == {"min_area_m2": 0.0}  # speed-only options never force a redo
    record = {"input": fp, "model": {"sha256": "m1"}, "parameters": params}
    assert why_redo(None, fp, "m1", params) == "new"
    assert why_redo(record, fp, "m1", params) is None
    assert why_redo(record, fp, "m2", params) == "model changed"
    assert why_redo(record, fp, "m1", {"min_area_m2": 1.0}) == \
        "parameters changed (min_area_m2)"
    assert why_redo(record, {**fp, "bytes": 2}, "m1", params) == "input changed"
    hashed = input_fingerprint(raster, with_hash=True)
    assert why_redo({**record, "input": hashed}, {**hashed, "mtime_ns": 1}, "m1", params) is None


def test_leftovers_of_atomic_outputs_are_removed_and_nothing_else(tmp_path):
    keep = [tmp_path / "f1" / "mask.tif", tmp_path / "runs" / "x" / "report.csv",
            tmp_path / ".agriseg-batch.lock", tmp_path / "index.gpkg", tmp_path / "f1" / ".keep"]
    junk = [tmp_path / ".f2.1a2b3c4d.part" / "mask.tif", tmp_path / ".f3.0badcafe.old" / "x",
            tmp_path / "f1" / ".batch_record.k2j3h4g5.part.json",
            tmp_path / ".index.abcd1234.part.gpkg-journal",
            tmp_path / "runs" / "x" / ".report.q1w2e3r4.part.csv"]
    _touch(*keep, *junk)
    removed = clean_leftovers(tmp_path)
    # temporary folders go whole; temporary files one by one
    assert sorted(removed) == sorted([junk[0].parent, junk[1].parent, *junk[2:]])
    assert all(p.exists() for p in keep)
    assert not any(p.exists() for p in junk)


@pytest.mark.parametrize("name", ["agriseg-batch.service", "agriseg-batch.cron"])
def test_the_schedule_files_run_a_valid_batch_command(name):
    text = (ROOT / "configs" / "schedule" / name).read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if name.endswith(".service"):
        cmd = next(ln for ln in lines if ln.startswith("ExecStart=")).removeprefix("ExecStart=")
    else:
        cmd = lines[0].split(" ", 5)[5].split("&&", 1)[1]
    words = shlex.split(cmd)
    args = words[1:]
    assert Path(words[0].strip('"')).name == "agriseg"
    assert args[args.index("batch"):] == ["batch", "incoming/", "-o", "maps/", "--min-age", "600"]
    assert args[:args.index("batch")] == ["-q"]
    ctx = cli.commands["batch"].make_context("batch", args[args.index("batch") + 1:])
    assert ctx.params["min_age_s"] == 600 and ctx.params["inputs"] == ("incoming/",)
    assert (ROOT / "configs" / "schedule" / "agriseg-batch.timer").read_text().count(
        "OnCalendar=") == 1
