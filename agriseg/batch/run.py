"""``run_batch``: map every new or changed raster into an output root, unattended.

The steps of a run, each safe to interrupt at any point:

1. take the output root's lock (a second concurrent run is refused) and remove what a killed
   run left behind;
2. find the rasters (files, folders, globs, manifests) and decide for each: ``too-new`` (still
   being copied, under ``min_age_s``), ``skipped`` (done with this input, model and
   parameters), or to map (new, changed, forced or interrupted before);
3. map them with the local executor (worker processes) or on a Dask cluster, each raster into
   its own folder via :func:`~agriseg.jobs.fieldmap.map_field`, which appears whole or not at
   all, followed by its completion record;
4. keep ``runs/<UTC>/report.csv``/``report.json`` current after every raster, log to
   ``runs/<UTC>/batch.log``, and rebuild ``index.gpkg``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agriseg.batch.inputs import BatchItem, find_rasters, path_hash
from agriseg.batch.report import write_index, write_report
from agriseg.batch.state import (
    clean_leftovers,
    input_fingerprint,
    outroot_lock,
    owner_of,
    parameters_fingerprint,
    read_record,
    why_redo,
)
from agriseg.batch.task import Outcome, Task, run_task
from agriseg.errors import AgrisegError, ConfigError, OutputError, first_line
from agriseg.hashing import file_sha256
from agriseg.models.default import model_or_default
from agriseg.options import PredictOptions, VectorizeOptions, split_options
from agriseg.vector.export import format_for

log = logging.getLogger("agriseg")
STATUSES = ("done", "skipped", "failed", "too-new")
LOG_NAME = "batch.log"


@dataclass
class BatchResult:
    """A run's outcome: its folder (report, log), one row per raster, and the exit code the
    CLI returns (0 all mapped or skipped, 1 any failed)."""

    outroot: Path
    run_dir: Path
    rows: list[dict[str, Any]]
    seconds: float
    dashboard: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(r["status"] == s for r in self.rows) for s in STATUSES}

    @property
    def exit_code(self) -> int:
        return 1 if self.counts["failed"] else 0

    def line(self) -> str:
        c = self.counts
        return (f"{len(self.rows)} raster(s): {c['done']} mapped, {c['skipped']} already done, "
                f"{c['failed']} failed, {c['too-new']} too new, in {self.seconds:.1f} s; "
                f"report: {self.run_dir / 'report.csv'}")


def run_batch(inputs: Sequence[str | os.PathLike], outroot: str | os.PathLike, *,
              model: str | os.PathLike | None = None,
              predict_options: PredictOptions | None = None,
              vector_options: VectorizeOptions | None = None, fmt: str = "gpkg",
              jobs: int = 1, workers: int | None = None, scheduler: str | None = None,
              resources: dict[str, float] | None = None, retries: int = 0,
              timeout: float | None = None, min_age_s: float = 0.0, use_hash: bool = False,
              force: bool = False, progress: bool = False,
              echo: Callable[[str], None] | None = None,
              task_fn: Callable[[Task], Outcome] = run_task, **option_kw: Any) -> BatchResult:
    """Map every raster of ``inputs`` into its own folder under ``outroot``.

    Parameters
    ----------
    inputs
        Raster files, folders (searched recursively), glob patterns, manifest CSVs.
    outroot
        Output root: one ``agriseg map`` folder per raster, ``runs/``, ``index.gpkg``.
    model, predict_options, vector_options, fmt, **option_kw
        As for :func:`~agriseg.jobs.fieldmap.map_field`; a manifest row may override them.
    jobs
        Worker processes of the local executor.
    workers, scheduler, resources
        Run on Dask instead: a new local cluster of ``workers`` processes, or the scheduler
        at ``scheduler``; ``resources`` (e.g. ``{"GPU": 1}``) that each task asks for.
    retries, timeout
        Extra attempts for transient failures; seconds after which a raster is stopped
        (local executor).
    min_age_s, use_hash, force
        Leave rasters modified less than this ago for a later run; fingerprint inputs by
        content hash rather than size and mtime; redo every raster.
    progress, echo
        A progress bar over rasters on stderr; where to print the dashboard address.
    task_fn
        What runs per raster (an importable function; default :func:`run_task`).

    Raises
    ------
    AgrisegError
        A usage error: bad option, missing input or model, output root locked by another
        run. Failures of single rasters are not raised; they are in the result's rows.
    """
    t0 = time.perf_counter()
    popts, vopts = split_options(option_kw, predict_options, vector_options)
    fmt = format_for(f"fields.{fmt}", fmt)  # map_field's own rule for the format name
    _check_usage(jobs, workers, scheduler, resources, retries, timeout, min_age_s)
    outroot = Path(outroot)
    if outroot.exists() and not outroot.is_dir():
        raise OutputError(f"{outroot}: exists and is not a folder")
    default_model = str(Path(model_or_default(model)).resolve())
    if not Path(default_model).is_file():
        raise ConfigError(f"{model}: no such model file")
    if workers is not None or scheduler:
        from agriseg.batch.cluster import require_dask

        require_dask()
    items = find_rasters(inputs, exclude=outroot)
    executor = _Executor(jobs, workers, scheduler, resources, retries, timeout, task_fn)
    with outroot_lock(outroot), executor.started(echo):
        clean_leftovers(outroot)
        run_dir = _new_run_dir(outroot)
        with _run_log(run_dir / LOG_NAME):
            log.info("batch of %d raster(s) into %s", len(items), outroot)
            if executor.dashboard:
                log.info("Dask dashboard: %s", executor.dashboard)
            planner = _Planner(outroot, default_model, popts, vopts, fmt, use_hash, force,
                               min_age_s)
            run_info = {"started_utc": run_dir.name, "outroot": str(outroot.resolve()),
                        "inputs": [os.fspath(i) for i in inputs], "model": default_model,
                        "executor": executor.name}
            result = _run(planner, items, executor, run_dir, run_info, progress)
            result.seconds = time.perf_counter() - t0
            run_info.update(counts=result.counts, exit_code=result.exit_code,
                            seconds=round(result.seconds, 3))
            write_report(run_dir, result.rows, run_info)
            log.info("%s", result.line())
    return result


def _run(planner: _Planner, items: list[BatchItem], executor: _Executor, run_dir: Path,
         run_info: dict[str, Any], progress: bool) -> BatchResult:
    """Plan, map and report; the report is rewritten as each raster ends."""
    rows, tasks = planner.plan(items)
    write_report(run_dir, rows, run_info)
    by_key = {r["folder"]: r for r in rows}
    try:
        with closing(_progress(executor.run(tasks), len(tasks), progress)) as outcomes:
            for outcome in outcomes:
                _apply(by_key[outcome.key], outcome)
                write_report(run_dir, rows, run_info)
    except BaseException:  # Ctrl-C, SIGTERM turned into SystemExit...: the workers are gone
        for row in rows:
            if row["status"] == "pending":
                row.update(status="failed", reason="interrupted; the next run maps it")
        write_report(run_dir, rows, run_info)
        clean_leftovers(planner.outroot)
        raise
    _try_index(planner.outroot)
    return BatchResult(planner.outroot, run_dir, rows, 0.0, executor.dashboard)


def _check_usage(jobs, workers, scheduler, resources, retries, timeout, min_age_s) -> None:
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if workers is not None and scheduler:
        raise ConfigError("give --workers (start a local Dask cluster) or --scheduler (use "
                          "a running one), not both")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if retries < 0:
        raise ConfigError(f"--retries must be >= 0, got {retries}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout must be > 0 seconds, got {timeout}")
    if resources and workers is None and not scheduler:
        raise ConfigError("--resources are Dask worker resources: use them with --workers or "
                          "--scheduler")
    if timeout is not None and (workers is not None or scheduler):
        raise ConfigError("--timeout works with the local executor only: Dask cannot stop a "
                          "running task")
    if min_age_s < 0:
        raise ConfigError(f"--min-age must be >= 0 seconds, got {min_age_s}")


class _Planner:
    """Decides per raster: too new, already done, or a task (and why)."""

    def __init__(self, outroot: Path, model: str, popts: PredictOptions,
                 vopts: VectorizeOptions, fmt: str, use_hash: bool, force: bool,
                 min_age_s: float) -> None:
        self.outroot, self.model, self.fmt = outroot, model, fmt
        self.base = {**dataclasses.asdict(popts), **dataclasses.asdict(vopts)}
        self.use_hash, self.force, self.min_age_s = use_hash, force, min_age_s
        self.shas: dict[str, str] = {}
        self.claimed: set[str] = set()

    def folder_for(self, item: BatchItem, resolved: str) -> str:
        """The raster's folder name: the plain one or the path-hashed one, whichever it
        already owns, else the first free one; a name is never given to two rasters."""
        names = [item.key, f"{item.key}-{path_hash(Path(resolved))}"]
        owners = {n: owner_of(self.outroot / n) for n in names}
        free = [n for n in names if n.lower() not in self.claimed]
        pick = next((n for n in free if owners[n] == resolved), None) or \
            next((n for n in free if owners[n] is None), names[1])
        self.claimed.add(pick.lower())
        return pick

    def plan(self, items: list[BatchItem]) -> tuple[list[dict[str, Any]], list[Task]]:
        rows, tasks = [], []
        now = time.time()
        for item in items:
            row = {"raster": str(item.path), "folder": item.key, "status": "", "reason": ""}
            rows.append(row)
            try:
                task = self._task(item, now, row)
            except AgrisegError as e:
                row.update(status="failed", reason=first_line(e))
                log.error("%s: %s", item.path, row["reason"])
                continue
            except OSError as e:  # vanished or unreadable between listing and planning
                row.update(status="failed", reason=f"{e.strerror or e}: {item.path}")
                log.error("%s: %s", item.path, row["reason"])
                continue
            if task is not None:
                tasks.append(task)
        return rows, tasks

    def _task(self, item: BatchItem, now: float, row: dict[str, Any]) -> Task | None:
        age = now - item.path.stat().st_mtime
        if age < self.min_age_s:
            row.update(status="too-new", reason=f"modified {max(age, 0):.0f} s ago, under "
                       f"--min-age {self.min_age_s:g} s; left for a later run")
            log.info("%s: %s", item.path, row["reason"])
            return None
        over = dict(item.overrides)
        model = str(Path(over.pop("model", self.model)).resolve())
        fmt = over.pop("format", self.fmt)
        popts, vopts = split_options({**self.base, **over})  # checks the row's values
        options = {**dataclasses.asdict(popts), **dataclasses.asdict(vopts)}
        if not Path(model).is_file():
            raise ConfigError(f"model {model} does not exist")
        if model not in self.shas:
            self.shas[model] = file_sha256(Path(model))
        fp = input_fingerprint(item.path, self.use_hash)
        key = row["folder"] = self.folder_for(item, fp["path"])
        record = read_record(self.outroot / key)
        params = parameters_fingerprint({**options, "format": fmt})
        reason = why_redo(record, fp, self.shas[model], params)
        if reason is None and not self.force:
            row.update(status="skipped", reason="already done with this input, model and "
                       "parameters", **_figures(record))
            return None
        row["status"] = "pending"
        return Task(key=key, raster=str(item.path), folder=str(self.outroot / key),
                    model=model, model_sha256=self.shas[model], options=options, fmt=fmt,
                    fingerprint=fp, parameters=params, reason=reason or "forced (--force)")


def _figures(record: dict[str, Any] | None) -> dict[str, Any]:
    fig = (record or {}).get("figures", {})
    return {k: fig.get(k) for k in ("crop_ha", "weed_ha", "weed_share", "polygons")}


class _Executor:
    """Where the tasks run: local worker processes, or a Dask cluster (connected, or a local
    one started, on entering :meth:`started`, before any output is made)."""

    def __init__(self, jobs, workers, scheduler, resources, retries, timeout, task_fn) -> None:
        self.jobs, self.workers, self.scheduler = jobs, workers, scheduler
        self.resources, self.retries, self.timeout = resources, retries, timeout
        self.task_fn = task_fn
        self.client = None
        self.dashboard: str | None = None

    @property
    def name(self) -> str:
        if self.scheduler:
            return f"dask scheduler {self.scheduler}"
        if self.workers is not None:
            return f"dask LocalCluster, {self.workers} worker(s)"
        return f"local, {self.jobs} job(s)"

    @contextmanager
    def started(self, echo: Callable[[str], None] | None) -> Iterator[_Executor]:
        if self.workers is None and not self.scheduler:
            yield self
            return
        from agriseg.batch.cluster import dashboard_of, dask_client

        with dask_client(self.workers, self.scheduler, self.resources) as client:
            self.client, self.dashboard = client, dashboard_of(client)
            if self.dashboard and echo:
                echo(f"Dask dashboard: {self.dashboard}")
            try:
                yield self
            finally:
                self.client = None

    def run(self, tasks: list[Task]) -> Iterator[Outcome]:
        if not tasks:
            return
        # worker processes on this machine share its cores; a running cluster's are its own
        local_workers = self.jobs if self.client is None else self.workers
        if local_workers:
            threads = max(1, (os.cpu_count() or 1) // local_workers)
            tasks = [dataclasses.replace(t, torch_threads=threads) for t in tasks]
        if self.client is None:
            from agriseg.batch.local import run_local

            yield from run_local(tasks, jobs=min(self.jobs, len(tasks)), timeout=self.timeout,
                                 retries=self.retries, task_fn=self.task_fn)
            return
        from agriseg.batch.cluster import run_dask

        yield from run_dask(tasks, self.client, retries=self.retries,
                            resources=self.resources, task_fn=self.task_fn)


def _apply(row: dict[str, Any], outcome: Outcome) -> None:
    reason = outcome.reason.removeprefix(f"{row['raster']}: ")  # the row names the raster
    row.update(status=outcome.status, reason=reason, attempts=outcome.attempts,
               seconds=round(outcome.seconds, 3), worker=outcome.worker)
    if outcome.status == "done":
        row.update({k: outcome.figures.get(k) for k in ("crop_ha", "weed_ha", "weed_share",
                                                         "polygons", "mpx_per_s", "device")})
        log.info("%s: mapped into %s in %.1f s (%s)", row["raster"], row["folder"],
                 outcome.seconds, outcome.reason)
    else:
        log.error("%s: failed: %s", row["raster"], reason)
        if outcome.detail:
            log.debug("%s", outcome.detail)


def _progress(outcomes: Iterator[Outcome], total: int, progress: bool) -> Iterator[Outcome]:
    from tqdm import tqdm

    with tqdm(total=total, unit="raster", desc="batch", disable=not progress or not total,
              dynamic_ncols=True) as bar, closing(outcomes):  # type: ignore[type-var]
        for outcome in outcomes:
            bar.update(1)
            yield outcome


def _try_index(outroot: Path) -> None:
    try:
        n = write_index(outroot)
    except Exception as e:  # noqa: BLE001 - the maps are done; the index is a convenience
        log.error("index.gpkg not updated: %s: %s", type(e).__name__, first_line(e))
        return
    log.info("index.gpkg: %d footprint(s)", n)


def _new_run_dir(outroot: Path) -> Path:
    runs = outroot / "runs"
    runs.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        path = runs / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise OutputError(f"{runs}: cannot create a run folder")


@contextmanager
def _run_log(path: Path) -> Iterator[None]:
    """Copy agriseg's log lines (info and up, whatever the terminal shows) to ``path``."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("agriseg")
    old_level = logger.level
    effective = logger.getEffectiveLevel()
    saved = [(h, h.level) for h in logger.handlers]
    for h, level in saved:  # the terminal keeps its level
        h.setLevel(max(level, effective))
    logger.addHandler(handler)
    logger.setLevel(min(effective, logging.INFO))
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(old_level)
        for h, level in saved:
            h.setLevel(level)
