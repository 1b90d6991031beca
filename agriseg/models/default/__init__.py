"""The default model shipped with agriseg, used when a command gets no ``--model``.

``make weights`` trains it reproducibly from ``configs/train/default.yaml`` and copies the best
checkpoint here as ``agriseg-default.safetensors`` (a few MB; it travels in the wheel).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from agriseg.errors import CheckpointError

FILENAME = "agriseg-default.safetensors"


def model_or_default(model: str | os.PathLike | None) -> str | os.PathLike:
    """``model`` as given, or the default checkpoint when it is None."""
    return default_checkpoint() if model is None else model


def default_checkpoint() -> Path:
    """Path of the packaged default checkpoint; a clear error if this install lacks it."""
    path = Path(str(resources.files(__package__).joinpath(FILENAME)))
    if not path.is_file():
        raise CheckpointError("no default model is installed with agriseg; pass --model CKPT "
                              "(or run 'make weights' in a source checkout)")
    return path
