"""Outputs that appear whole or not at all.

Every file agriseg writes is first written under a temporary name in the target's folder and moved
into place with ``os.replace`` only when complete, so a crash, an error or Ctrl-C never leaves a
half-written raster where a user (or a cron job) would take it for a result.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
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
    with atomic_file_set(path, (), overwrite) as (tmp, _):
        yield tmp


@contextlib.contextmanager
def atomic_file_set(path: str | os.PathLike, sidecars: Sequence[str | os.PathLike],
                    overwrite: bool = False) -> Iterator[tuple[Path, list[Path]]]:
    """Like :func:`atomic_output` for a file and the sidecars that describe it (a QGIS
    ``.qml`` style, GDAL's ``.aux.xml``): yields temporary paths for ``path`` and for each
    sidecar, and moves them all into place when the block succeeds.

    A sidecar belongs to one version of its file, so they are replaced together: every
    sidecar is checked like an output (an existing one needs ``overwrite``), the old main
    file is removed first, the sidecars are moved in, and the main file last. A reader, who
    opens the main file, then never finds it beside another run's sidecar. A sidecar the block
    did not write is removed: it described the old file. If a move fails, the sidecars
    already moved are removed again.
    """
    path = check_output(path, overwrite)
    sides = [check_output(s, overwrite) for s in sidecars]
    tmp = _temp_beside(path)
    side_tmps = [_temp_beside(s) for s in sides]
    try:
        yield tmp, side_tmps
        if not tmp.exists():
            raise RuntimeError(f"nothing was written to {tmp}")
        for t in (tmp, *side_tmps):
            _default_mode(t, 0o666)
        if sides:
            _remove(path)
        moved: list[Path] = []
        try:
            for side, side_tmp in zip(sides, side_tmps, strict=True):
                if side_tmp.exists():
                    os.replace(side_tmp, side)
                    moved.append(side)
                else:
                    _remove(side)
            os.replace(tmp, path)
        except BaseException:
            for side in moved:
                _remove(side)
            raise
    finally:
        for t in (tmp, *side_tmps):
            _remove(t)
            # side-car files next to the temporary file: GDAL .aux.xml/.ovr, SQLite -journal
            for side in t.parent.glob(glob.escape(t.name) + "*"):
                _remove(side)


def _temp_beside(path: Path) -> Path:
    """A free temporary name beside ``path`` (hidden, ``.part`` before the suffix), not
    created: drivers want to create their files themselves."""
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}",
                                    dir=parent)
    os.close(fd)
    os.unlink(tmp_name)
    return Path(tmp_name)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Like :func:`atomic_output` for a folder of outputs: fill a temporary folder, then rename.

    Without ``overwrite`` the folder must not exist when the block ends either: if another run
    created it meanwhile, this run's result is discarded with an :class:`OutputError` and the
    other run's folder is left as it is (the rename itself refuses to replace a folder that
    has files, so there is no window in which one result silently replaces the other).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: output folder exists; pass --overwrite to replace it")
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder")
    _check_writable_folder(path)
    parent = path.parent if str(path.parent) else Path(".")
    tmp = _make_dir(parent, f".{path.name}.", ".part")
    try:
        yield tmp
        if overwrite and path.exists():
            old = _make_dir(parent, f".{path.name}.", ".old")
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            _rename_new_dir(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _rename_new_dir(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path``, which must not exist (or be an empty folder)."""
    try:
        os.rename(tmp, path)
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise
        raise OutputError(f"{path}: another run wrote this output folder while this one was "
                          f"working; its result was kept and this one discarded (pass "
                          f"--overwrite to replace it)") from None


def _make_dir(parent: Path, prefix: str, suffix: str) -> Path:
    """A new uniquely named folder with the permissions ``mkdir`` gives under the umask
    (``tempfile.mkdtemp`` would make it private, 0700)."""
    for _ in range(100):
        candidate = parent / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise OutputError(f"{parent}: cannot create a temporary folder there")


def _default_mode(p: Path, mode: int) -> None:
    """Give a file the permissions a plain ``open()`` would have (mkstemp uses 0600)."""
    if p.exists():
        os.chmod(p, mode & ~current_umask())


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only be read by setting
    it, which races with threads creating files meanwhile)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with tempfile.TemporaryDirectory() as probe:  # no /proc: ask mkdir, which applies it
        test = Path(probe) / "m"
        test.mkdir(0o777)
        return 0o777 & ~stat.S_IMODE(test.stat().st_mode)


def _remove(p: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        p.unlink()
