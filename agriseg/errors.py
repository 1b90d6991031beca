"""Exceptions raised by agriseg for bad input.

Every error a person can cause (a missing file, a raster that does not fit the model, an
output that already exists) is an ``AgrisegError``. Subclasses also inherit the matching
builtin so callers may catch either. The CLI turns these into one line and exit code 2;
anything else is a bug and keeps its traceback. This module never imports click.
"""

from __future__ import annotations


class AgrisegError(Exception):
    """Base class: a problem with the user's input, not a bug in agriseg."""


class InputNotFoundError(AgrisegError, FileNotFoundError):
    """An input file or folder does not exist."""


class RasterError(AgrisegError, ValueError):
    """A file is not a readable raster, or is empty or corrupt."""


class ModelMismatchError(AgrisegError, ValueError):
    """A raster does not fit a model card (bands, dtype, patch size)."""


class CheckpointError(AgrisegError, ValueError):
    """A checkpoint is corrupt, incomplete or not an agriseg checkpoint."""


class ConfigError(AgrisegError, ValueError):
    """A model or job configuration is invalid (unknown architecture, bad option value)."""


class OutputError(AgrisegError, OSError):
    """An output cannot be written (exists without overwrite, folder not writable)."""


class VectorError(AgrisegError, ValueError):
    """A vector file is unreadable or lacks what is needed (layer, class attribute)."""


def first_line(error: BaseException, default: str = "no details") -> str:
    """The first line of an exception's message: GDAL, OGR and HTTP errors run on for pages."""
    text = str(error).strip()
    return text.splitlines()[0] if text else default
