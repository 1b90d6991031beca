"""A checkpoint's header: the model card, read without PyTorch.

The card sits in the safetensors header, so reading it needs neither the weights nor torch:
``agriseg info --model`` and the ONNX Runtime path (which maps a field from a cached export)
read it here without importing PyTorch.
"""

from __future__ import annotations

import os
from pathlib import Path

from agriseg.errors import CheckpointError, InputNotFoundError
from agriseg.models.card import ModelCard

FORMAT = "agriseg.checkpoint"
FORMAT_VERSION = "1"
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+ / torch zip archive


def read_card(path: str | os.PathLike) -> ModelCard:
    """Read only the model card from a checkpoint header (no weights, no code)."""
    return ModelCard.from_json(_read_metadata(Path(path))["model_card"])


def _read_metadata(path: Path) -> dict[str, str]:
    from safetensors import SafetensorError, safe_open

    if not path.exists():
        raise InputNotFoundError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint is not a file")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        # only now look for pickle: a safetensors file starts with its header's length, whose
        # first byte may well be 0x80 (1 file in 256), like a pickle's protocol marker
        with open(path, "rb") as f:
            head = f.read(4)
        if head.startswith(_PICKLE_MAGIC):
            raise CheckpointError(f"{path}: this is a pickle/PyTorch file, not an agriseg "
                                  "checkpoint; agriseg never unpickles files (they can run "
                                  "code)") from None
        raise CheckpointError(f"{path}: not a valid safetensors checkpoint (corrupt or another "
                              f"format): {e}") from None
    if meta.get("format") != FORMAT or "model_card" not in meta:
        raise CheckpointError(f"{path}: a safetensors file, but not an agriseg checkpoint "
                              "(no agriseg model card in its header)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {meta.get('format_version')} "
                              f"is not supported (this agriseg reads {FORMAT_VERSION})")
    return meta
