"""Content hashes of files: a model's identity in ``summary.json``, a batch's fingerprints.

Kept apart from the heavy modules so that whoever only needs a hash (the batch planner, which
must not load PyTorch) imports nothing else.
"""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks (models and rasters can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
