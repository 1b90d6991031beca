"""Atomic outputs: whole or nothing, with ordinary permissions."""

import os
import stat

import pytest

from agriseg.errors import OutputError
from agriseg.outputs import atomic_dir, atomic_output


def test_atomic_output_replaces_only_on_success(tmp_path):
    target = tmp_path / "a.txt"
    with pytest.raises(ValueError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise ValueError("boom")
    assert not target.exists() and os.listdir(tmp_path) == []
    with atomic_output(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    with pytest.raises(OutputError, match="--overwrite"), atomic_output(target):
        pass


def test_outputs_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "f.bin") as tmp:
            tmp.write_bytes(b"x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_a_folder_written_meanwhile_by_another_run_is_not_replaced(tmp_path):
    target = tmp_path / "field"
    with pytest.raises(OutputError, match="another run"), atomic_dir(target) as d:
        (d / "mine.txt").write_text("this run")
        target.mkdir()  # the other run finishes first
        (target / "theirs.txt").write_text("other run")
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["field"]  # no leftovers
    with atomic_dir(target, overwrite=True) as d:
        (d / "mine.txt").write_text("this run")
    assert [p.name for p in target.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["field"]


def test_umask_is_read_without_being_changed():
    from agriseg.outputs import current_umask

    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # still what it was
    finally:
        os.umask(old)


def _files(folder):
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def test_a_file_and_its_sidecars_appear_together(tmp_path):
    from agriseg.outputs import atomic_file_set

    main, side = tmp_path / "m.tif", tmp_path / "m.qml"
    with pytest.raises(ValueError), atomic_file_set(main, [side]) as (tmp, (side_tmp,)):
        tmp.write_text("half")
        side_tmp.write_text("style")
        raise ValueError("boom")
    assert os.listdir(tmp_path) == []
    with atomic_file_set(main, [side]) as (tmp, (side_tmp,)):
        assert tmp.parent == side_tmp.parent == tmp_path and tmp.name.startswith(".m.")
        tmp.write_text("v1")
        side_tmp.write_text("style 1")
    assert _files(tmp_path) == {"m.qml": "style 1", "m.tif": "v1"}


def test_an_existing_sidecar_needs_overwrite_and_is_replaced_or_removed_with_its_file(
        tmp_path):
    from agriseg.outputs import atomic_file_set

    main, side = tmp_path / "m.tif", tmp_path / "m.qml"
    side.write_text("someone's style")
    with pytest.raises(OutputError, match="m.qml.*--overwrite"), \
            atomic_file_set(main, [side]):
        pass
    assert _files(tmp_path) == {"m.qml": "someone's style"}
    with atomic_file_set(main, [side], overwrite=True) as (tmp, (side_tmp,)):
        tmp.write_text("v2")
        side_tmp.write_text("style 2")
    assert _files(tmp_path) == {"m.qml": "style 2", "m.tif": "v2"}
    with atomic_file_set(main, [side], overwrite=True) as (tmp, _):
        tmp.write_text("v3")  # no style this time: the old one described the old file
    assert _files(tmp_path) == {"m.tif": "v3"}


def test_a_failed_move_leaves_no_file_with_a_foreign_sidecar(tmp_path, monkeypatch):
    from agriseg import outputs

    main, side = tmp_path / "m.tif", tmp_path / "m.qml"
    real = os.replace

    def fail_on_main(src, dst):
        if str(dst) == str(main):
            raise OSError("disk gone")
        real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", fail_on_main)
    with pytest.raises(OSError, match="disk gone"), \
            outputs.atomic_file_set(main, [side]) as (tmp, (side_tmp,)):
        tmp.write_text("v1")
        side_tmp.write_text("style 1")
    assert os.listdir(tmp_path) == []  # the sidecar moved in is taken out again
