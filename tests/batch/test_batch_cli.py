"""``agriseg batch`` as a real process: kill -9 and resume, the lock across processes, exit
codes and messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from batch_helpers import assert_same_maps, field, leftovers, snapshot
from cli_helpers import assert_bad_input, run

OLD = time.time() - 3600
CLI = [sys.executable, "-m", "agriseg"]


def _inbox(folder: Path, n: int, size: int) -> list[Path]:
    paths = [field(folder / f"field{i}.tif", size=size, seed=i) for i in range(n)]
    for p in paths:
        os.utime(p, (OLD, OLD))
    return paths


def _batch(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "batch", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kw)


def _wait_for(predicate, timeout: float = 120.0, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False


def test_kill_9_mid_raster_then_rerun_equals_an_uninterrupted_run(tmp_path):
    inbox = tmp_path / "in"
    _inbox(inbox, 2, 1280)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*CLI, "batch", str(inbox), "-o", str(killed), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # a raster's temporary folder exists only while it is being mapped
        assert _wait_for(lambda: killed.is_dir() and any(
            p.name.endswith(".part") for p in killed.iterdir())), proc.stderr
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1.0)
    half = leftovers(killed)
    assert half, "the kill should have caught a raster mid-way"
    time.sleep(2.0)  # the worker died with the batch: nothing moves any more
    assert leftovers(killed) == half

    resumed = _batch(inbox, "-o", killed, "-q")  # not blocked by the dead run's lock
    assert resumed.returncode == 0, resumed.stderr
    assert leftovers(killed) == []
    full = tmp_path / "full"
    assert _batch(inbox, "-o", full, "-q").returncode == 0
    keys = ["field0", "field1"]
    assert sorted(p.name for p in killed.iterdir() if p.is_dir() and p.name != "runs") == keys
    assert_same_maps(killed, full, keys)
    # and the run after that finds everything done
    again = _batch(inbox, "-o", killed, "--json", "-q")
    assert json.loads(again.stdout)["counts"]["skipped"] == 2


def test_ctrl_c_stops_cleanly_and_the_report_says_so(tmp_path):
    inbox = tmp_path / "in"
    _inbox(inbox, 2, 1280)
    out = tmp_path / "maps"
    proc = subprocess.Popen([*CLI, "batch", str(inbox), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: out.is_dir() and any(
            p.name.endswith(".part") for p in out.iterdir()))
        proc.send_signal(signal.SIGINT)  # the batch process only, as a terminal's Ctrl-C
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Interrupted" in err
    assert leftovers(out) == []
    (report,) = out.glob("runs/*/report.json")
    rows = json.loads(report.read_text())["rasters"]
    assert {r["status"] for r in rows} <= {"done", "failed"}
    assert any(r["reason"] == "interrupted; the next run maps it" for r in rows)
    for r in rows:
        assert (out / r["folder"] / "mask.tif").exists() == (r["status"] == "done")


def test_a_concurrent_run_is_refused_and_a_killed_holder_never_blocks(tmp_path):
    (a,) = _inbox(tmp_path / "in", 1, 128)
    out = tmp_path / "maps"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from agriseg.batch.state import outroot_lock
        with outroot_lock(Path({str(out)!r})):
            print("locked", flush=True)
            time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused = _batch(a, "-o", out)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            f"Error: {out}: another batch is running on this output root (pid {holder.pid}, "
            f"started {refused.stderr.split('started ')[1].split(')')[0]}); wait for it to "
            f"finish or use another -o folder"]
        assert not (out / "field0").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    after = _batch(a, "-o", out, "-q")
    assert after.returncode == 0, after.stderr
    assert (out / "field0" / "mask.tif").is_file()


def test_exit_codes_and_messages(tmp_path, make_checkpoint):
    ckpt = make_checkpoint()
    inbox = tmp_path / "in"
    _inbox(inbox, 2, 96)
    out = tmp_path / "maps"
    ok = run("batch", inbox, "-o", out, "-m", ckpt)
    assert ok.exit_code == 0, ok.output
    assert "2 raster(s): 2 mapped, 0 already done, 0 failed, 0 too new" in ok.output
    (inbox / "broken.tif").write_bytes(b"not a tiff")
    bad = run("batch", inbox, "-o", out, "-m", ckpt, "--json", "-q")
    assert bad.exit_code == 1
    report = json.loads(bad.output[bad.output.index("{"):])
    assert report["counts"] == {"done": 0, "skipped": 2, "failed": 1, "too-new": 0}
    assert [r["folder"] for r in report["rasters"] if r["status"] == "failed"] == ["broken"]

    assert_bad_input(run("batch", tmp_path / "nope.tif", "-o", out), "nope.tif",
                     "no such raster")
    assert_bad_input(run("batch", inbox, "-o", out, "--workers", "2", "--scheduler",
                         "tcp://127.0.0.1:1"), "not both")
    assert_bad_input(run("batch", inbox, "-o", out, "-m", tmp_path / "x.safetensors"),
                     "no such model")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,colour\nin/field0.tif,red\n")
    assert_bad_input(run("batch", manifest, "-o", out), "unknown manifest column",
                     "colour")
    assert_bad_input(run("batch", inbox, "-o", out, "--resources", "GPU=1"), "--resources",
                     "Dask")
    assert run("batch", inbox, "-o", out, "--resources", "GPU=x").exit_code == 2
    help_text = run("batch", "--help").output
    for words in ("Exit codes: 0", "1 at least one raster failed", "2 usage error"):
        assert words in " ".join(help_text.split())


def test_quiet_run_prints_nothing_but_failures(tmp_path, make_checkpoint):
    (a,) = _inbox(tmp_path / "in", 1, 96)
    broken = tmp_path / "in" / "broken.tif"
    broken.write_bytes(b"nope")
    out = tmp_path / "maps"
    ckpt = make_checkpoint()
    r = _batch(a, broken, "-o", out, "-m", ckpt, "-q")
    assert r.returncode == 1
    assert r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {broken}: failed: not a readable raster")
    before = snapshot(out)
    assert _batch(a, "-o", out, "-m", ckpt, "-q").returncode == 0
    assert snapshot(out) == before
