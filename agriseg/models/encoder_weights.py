"""Pretrained encoder weights: a local file the user names, or an smp weight name.

agriseg itself never downloads anything. ``encoder_weights`` is either a local state-dict file
(``.safetensors``, or ``.pt``/``.pth``/``.bin`` read with ``weights_only=True``, never
unpickled as code), loaded here with every tensor shape checked, or a name such as
``imagenet`` that is handed to segmentation-models-pytorch, which fetches it from the internet
(and fails where there is none). This module does not import torch until a file is loaded, so
configs can tell names from files cheaply.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from agriseg.errors import CheckpointError, ConfigError, InputNotFoundError

log = logging.getLogger("agriseg")

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def is_weights_file(weights: str | os.PathLike, base: str | os.PathLike | None = None) -> bool:
    """True for a local file (by suffix, a path separator, or existence, relative to ``base``
    when given), False for an smp weight name like ``imagenet``."""
    text = str(weights)
    p = Path(weights)
    if p.suffix.lower() in WEIGHT_SUFFIXES or "/" in text or os.sep in text:
        return True
    return (Path(base) / p).exists() if base is not None else p.exists()


def load_encoder_weights(model: Any, path: str | os.PathLike) -> None:
    """Load a local encoder state dict into ``model.encoder``, refusing tensors whose shapes do
    not fit; warns with counts when the file covers only part of the encoder."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: encoder weights file not found (agriseg never "
                                 "downloads weights; name a local .safetensors or .pth file)")
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise ConfigError("this architecture has no encoder to load weights into")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or pickled code: both are the user's file, not our bug
        raise CheckpointError(f"{path}: cannot read encoder weights: {e}") from None
    own = encoder.state_dict()
    bad = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
           for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise CheckpointError(f"{path}: encoder weights do not fit ({len(bad)} tensors), "
                              f"e.g. {bad[0]}")
    missing = [k for k in own if k not in state]
    if len(missing) == len(own):
        raise CheckpointError(f"{path}: no tensor names match this encoder")
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        log.warning("%s: loaded %d of the encoder's %d tensors; %d keep their random "
                    "initialization (e.g. %s) and %d in the file are not used (e.g. %s)",
                    path, len(own) - len(missing), len(own), len(missing),
                    missing[0] if missing else "-", len(unexpected),
                    unexpected[0] if unexpected else "-")
    encoder.load_state_dict(state, strict=False)
