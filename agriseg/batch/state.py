"""What a batch remembers between runs: completion records, the output root's lock, leftovers.

A raster is done when its folder and the completion record inside it exist and the record
matches what this run would do: the same input (size and mtime, or content hash with
``--hash``), the same model (sha256) and the same result-changing parameters. The record is
written after ``map_field`` has moved the folder into place, so a run killed in between leaves
a folder without a record, which the next run redoes. Temporary files and folders a killed run
leaves behind follow agriseg's atomic-output naming (hidden, ``.part``/``.old``) and are
removed by the next run, which holds the output root's lock and so knows nobody writes them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agriseg.errors import OutputError
from agriseg.hashing import file_sha256
from agriseg.outputs import atomic_output

RECORD_NAME = "batch_record.json"
LOCK_NAME = ".agriseg-batch.lock"
RECORD_VERSION = 1
# options that change how fast a map is made, not what it holds
NOT_FINGERPRINTED = ("batch_size", "device", "threads")
_LEFTOVER = re.compile(r"^\..+\.(part(\..*)?|[0-9a-f]{8}\.old)$|^\.agriseg-probe-")

log = logging.getLogger("agriseg")


def input_fingerprint(path: Path, with_hash: bool = False) -> dict[str, Any]:
    """Identity of an input raster: resolved path, size and mtime; with ``with_hash`` also
    the sha256 of its content (a copy with a new mtime then still counts as unchanged)."""
    st = path.stat()
    fp: dict[str, Any] = {"path": str(path.resolve()), "bytes": st.st_size,
                          "mtime_ns": st.st_mtime_ns}
    if with_hash:
        fp["sha256"] = file_sha256(path)
    return fp


def parameters_fingerprint(options: dict[str, Any]) -> dict[str, Any]:
    """The parameters that decide a map's content, in a canonical JSON-able form."""
    return json.loads(json.dumps({k: v for k, v in sorted(options.items())
                                  if k not in NOT_FINGERPRINTED}, default=list))


def read_record(folder: Path) -> dict[str, Any] | None:
    """The folder's completion record, or None when missing or unreadable (then redo)."""
    try:
        record = json.loads((folder / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("version") == RECORD_VERSION \
        else None


def owner_of(folder: Path) -> str | None:
    """The input path a raster folder belongs to: from its completion record, else from the
    ``summary.json`` of a run interrupted before its record; None for a free name, and ""
    for a folder whose owner cannot be read (it is never taken over)."""
    record = read_record(folder)
    if record is not None:
        return record.get("input", {}).get("path")
    try:
        return json.loads((folder / "summary.json").read_text())["input"]["path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None if not folder.exists() else ""


def write_record(folder: Path, record: dict[str, Any]) -> None:
    with atomic_output(folder / RECORD_NAME, overwrite=True) as tmp:
        tmp.write_text(json.dumps({"version": RECORD_VERSION, **record}, indent=2) + "\n")


def why_redo(record: dict[str, Any] | None, fingerprint: dict[str, Any], model_sha: str,
             parameters: dict[str, Any]) -> str | None:
    """None when ``record`` says this exact job is done, else why it must be (re)done."""
    if record is None:
        return "new"
    old = record.get("input", {})
    if old.get("path") != fingerprint["path"]:
        return "other input"
    if "sha256" in fingerprint:
        if old.get("sha256") != fingerprint["sha256"]:
            return "input changed"
    elif (old.get("bytes"), old.get("mtime_ns")) != (fingerprint["bytes"],
                                                       fingerprint["mtime_ns"]):
        return "input changed"
    if record.get("model", {}).get("sha256") != model_sha:
        return "model changed"
    changed = sorted(k for k in set(parameters) | set(record.get("parameters", {}))
                     if parameters.get(k) != record.get("parameters", {}).get(k))
    if changed:
        return f"parameters changed ({', '.join(changed)})"
    return None


@contextlib.contextmanager
def outroot_lock(outroot: Path) -> Iterator[Path]:
    """Hold the output root's OS file lock for the block, or fail at once if another batch
    holds it. The kernel drops the lock when its holder dies, ``kill -9`` included, so a
    crashed run never blocks the next; the file's text (pid, start) only informs."""
    outroot.mkdir(parents=True, exist_ok=True)
    path = outroot / LOCK_NAME
    f = open(path, "a+")  # noqa: SIM115 - held open for the whole block
    try:
        if not _try_lock(f):
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise OutputError(f"{outroot}: another batch is running on this output root "
                              f"({holder}); wait for it to finish or use another -o folder")
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, started "
                f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}\n")
        f.flush()
        yield path
    finally:
        f.close()  # closing releases the lock


def _try_lock(f) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def clean_leftovers(outroot: Path) -> list[Path]:
    """Remove the temporary files and folders of runs that were killed; return them.

    Only call this while holding :func:`outroot_lock`. Looks at the output root, the
    raster folders and run folders in it (where atomic outputs put their temporaries).
    """
    removed = []
    if not outroot.is_dir():
        return removed
    folders = [outroot] + [d for d in outroot.iterdir() if d.is_dir()
                           and not d.name.startswith(".")]
    runs = outroot / "runs"
    if runs.is_dir():
        folders += [d for d in runs.iterdir() if d.is_dir()]
    for folder in folders:
        for p in folder.iterdir():
            if not _LEFTOVER.match(p.name):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            removed.append(p)
    if removed:
        log.info("removed %d temporary leftover(s) of an interrupted run", len(removed))
    return removed
