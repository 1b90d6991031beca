"""Checkpoints: one ``.safetensors`` file holding the weights, with the model card in its header.

safetensors stores raw tensors and a JSON header, nothing executable, so opening a checkpoint can
never run code (unlike pickle-based ``.pt`` files, which agriseg refuses). The card is read from
the header alone, so ``agriseg info --model`` does not need to build the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from agriseg.errors import CheckpointError, ConfigError, first_line
from agriseg.models.card import ModelCard
from agriseg.models.default import model_or_default
from agriseg.models.header import FORMAT, FORMAT_VERSION, read_card  # noqa: F401
from agriseg.models.registry import model_from_config
from agriseg.outputs import atomic_output


def save_checkpoint(path: str | os.PathLike, model: nn.Module, card: ModelCard,
                    overwrite: bool = True) -> Path:
    """Write ``model``'s weights and ``card`` to ``path`` atomically."""
    from safetensors.torch import save_model

    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "model_card": card.to_json()}
    with atomic_output(path, overwrite=overwrite) as tmp:
        save_model(model, str(tmp), metadata=metadata)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"
                    ) -> tuple[nn.Module, ModelCard]:
    """Rebuild the network from the card and load its weights; returns ``(model, card)``."""
    path = Path(path)
    card = read_card(path)
    try:
        model = model_from_config(card.arch, in_channels=card.in_channels,
                                  classes=card.num_classes)
    except ConfigError as e:
        raise CheckpointError(f"{path}: model card describes a model agriseg cannot build: {e}") \
            from None
    from safetensors.torch import load_model

    try:
        load_model(model, str(path), strict=True, device=str(device))
    except (RuntimeError, ValueError, OSError) as e:
        first = first_line(e)[:200]
        raise CheckpointError(f"{path}: weights do not match the model card: {first}") from None
    return model.eval(), card


@dataclass(frozen=True)
class Model:
    """A network with its model card, ready to predict (what :func:`load_model` returns)."""

    net: nn.Module
    card: ModelCard
    path: Path | None = None


def load_model(path: str | os.PathLike | Model | None = None,
               device: str | torch.device = "cpu") -> Model:
    """Load a checkpoint (None: the default model shipped with agriseg) as a :class:`Model`.

    Parameters
    ----------
    path
        An agriseg ``.safetensors`` checkpoint. Nothing is unpickled and no code runs. A
        :class:`Model` is returned as it is, so callers may take either.
    device
        Where the weights are loaded (``cpu``, ``cuda``...).

    Returns
    -------
    Model
        ``net`` (an ``nn.Module`` in eval mode), ``card`` (bands, classes, normalization...)
        and ``path``.

    Raises
    ------
    AgrisegError
        The file is missing, not an agriseg checkpoint, or its weights do not fit its card.
    """
    if isinstance(path, Model):
        return path
    path = Path(model_or_default(path))
    net, card = load_checkpoint(path, device)
    return Model(net=net, card=card, path=path)

