"""Outputs that appear whole or not at all.

Every file agriseg writes is first written under a temporary name in the target's folder and moved
into place with ``os.replace`` only when complete, so a crash, an error or Ctrl-C never leaves a
half-written raster where a user (or a cron job) would take it for a result.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agriseg.errors import OutputError


def check_output(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Validate an output path before any work starts; return it as a ``Path``.

    Fails early (rather than after an hour of inference) when the file exists without
    ``overwrite`` or when its folder is missing or not writable.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: output exists; pass --overwrite to replace it")
    if path.is_dir():
        raise OutputError(f"{path}: output is a folder, expected a file name")
    _check_writable_folder(path)
    return path


def _check_writable_folder(path: Path) -> None:
    """Probe by creating a file: permission bits lie to root and on read-only mounts."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{path}: folder {parent} does not exist; create it first")
    try:
        fd, probe = tempfile.mkstemp(prefix=".agriseg-probe-", dir=parent)
    except OSError as e:
        raise OutputError(f"{path}: folder {parent} is not writable ({e.strerror})") from None
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left as it was. The
    temporary name keeps the suffix so GDAL/OGR drivers guessed from it still work.
    """
    path = check_output(path, overwrite)
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}",
                                    dir=parent)
    os.close(fd)
    os.unlink(tmp_name)  # drivers want to create the file themselves
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written to {tmp}")
        _default_mode(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        _remove(tmp)
        # side-car files next to the temporary file: GDAL .aux.xml/.ovr, SQLite -journal/-wal
        for side in parent.glob(glob.escape(tmp.name) + "*"):
            _remove(side)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Like :func:`atomic_output` for a folder of outputs: fill a temporary folder, then rename."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: output folder exists; pass --overwrite to replace it")
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder")
    _check_writable_folder(path)
    parent = path.parent if str(path.parent) else Path(".")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=parent))
    try:
        yield tmp
        _default_mode(tmp, 0o777)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _default_mode(p: Path, mode: int) -> None:
    """Give a temporary file the permissions a plain ``open()`` would have (mkstemp uses 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    if p.exists():
        os.chmod(p, mode & ~umask)


def _remove(p: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        p.unlink()
