"""The Dask executor against real clusters: an in-process LocalCluster, and a ``dask
scheduler`` with two ``dask worker`` processes started here. Outputs must equal the local
executor's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_helpers import assert_same_maps, faulty_task, field
from cli_helpers import assert_bad_input, run

from agriseg.batch.run import run_batch

distributed = pytest.importorskip("distributed")

OLD = time.time() - 3600
KEYS = ["f0", "f1", "f2", "f3"]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    for i, key in enumerate(KEYS):
        p = field(folder / f"{key}.tif", size=160, seed=10 + i)
        os.utime(p, (OLD, OLD))
    return folder


@pytest.fixture
def local_maps(inbox, tmp_path, make_checkpoint) -> tuple[Path, Path]:
    ckpt = make_checkpoint()
    out = tmp_path / "local"
    assert run_batch([inbox], out, model=ckpt).exit_code == 0
    return ckpt, out


def test_local_cluster_equals_the_local_executor_and_survives_a_dead_worker(
        inbox, local_maps, tmp_path):
    ckpt, local = local_maps
    field(inbox / "crash.tif", size=64, seed=1)
    os.utime(inbox / "crash.tif", (OLD, OLD))
    out = tmp_path / "dask"
    result = run_batch([inbox], out, model=ckpt, workers=2, task_fn=faulty_task)
    status = {r["folder"]: r["status"] for r in result.rows}
    assert status == {**dict.fromkeys(KEYS, "done"), "crash": "failed"}
    crash = next(r for r in result.rows if r["folder"] == "crash")
    assert crash["reason"].startswith("Dask worker lost while mapping it")
    assert result.exit_code == 1
    assert result.dashboard and result.dashboard.startswith("http")
    assert_same_maps(local, out, KEYS)
    # each worker process loaded the model once, however many rasters it mapped
    done = [r["worker"] for r in result.rows if r["status"] == "done"]
    assert {w["model_loads"] for w in done} == {1}
    per_pid = {pid: sum(w["pid"] == pid for w in done) for pid in {w["pid"] for w in done}}
    assert max(per_pid.values()) >= 2 and os.getpid() not in per_pid, per_pid
    # resumable like the local executor: a re-run skips what is done
    again = run_batch([inbox / f"{k}.tif" for k in KEYS], out, model=ckpt, workers=2)
    assert {r["status"] for r in again.rows} == {"skipped"}
    # tasks that ask for a resource run on local workers that offer it (and never hang)
    gpu = run_batch([inbox / "f0.tif"], out, model=ckpt, workers=1, resources={"GPU": 1},
                    force=True)
    assert [r["status"] for r in gpu.rows] == ["done"]


def _dask_cli() -> str:
    exe = Path(sys.executable).parent / "dask"
    if not exe.exists():
        pytest.skip("the dask command is not installed beside this Python")
    return str(exe)


def test_a_real_scheduler_and_two_workers_give_the_same_outputs(inbox, local_maps, tmp_path):
    ckpt, local = local_maps
    dask = _dask_cli()
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([dask, "scheduler", "--scheduler-file", str(sched_file),
                               "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                               ":0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env)]
    try:
        end = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < end:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                 "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env))
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        out = tmp_path / "cluster"
        r = run("batch", inbox, "-o", out, "-m", ckpt, "--scheduler", address, "--json", "-q")
        assert r.exit_code == 0, r.output
        report = json.loads(r.output[r.output.index("{"):])
        assert report["counts"]["done"] == len(KEYS)
        pids = {row["worker"]["pid"] for row in report["rasters"]}
        assert len(pids) == 2 and os.getpid() not in pids  # both worker processes mapped
        assert_bad_input(run("batch", inbox, "-o", out, "--scheduler", address, "--force",
                             "--resources", "GPU=1"), "no worker", "offers GPU=1",
                         "--resources GPU=1")
        assert_same_maps(local, out, KEYS)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_without_dask_the_options_fail_with_one_line_naming_the_extra(inbox, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    assert_bad_input(run("batch", inbox, "-o", tmp_path / "maps", "--workers", "2"),
                     'pip install "agriseg[dask]"')
    assert not (tmp_path / "maps" / "f0").exists()
