"""Device names and their resolution; importing this does not import torch (fast CLI start)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from agriseg.constants import DEVICES
from agriseg.errors import ConfigError

if TYPE_CHECKING:
    import torch

Device = Literal["auto", "cpu", "cuda"]


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is a user error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but no CUDA GPU is available; use "
                              "--device cpu or auto")
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
