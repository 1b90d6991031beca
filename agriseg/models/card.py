"""The model card: everything inference needs to know about a model, stored with its weights.

A checkpoint without its card is a guess (which bands? which scaling? which classes?). The card
is a plain dataclass that round-trips through JSON, so it can live in a safetensors header and be
read without loading any weights or executing any code.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from agriseg import __version__
from agriseg.constants import SUPPORTED_DTYPES
from agriseg.errors import CheckpointError, ConfigError
from agriseg.styles import fallback_color


@dataclass(frozen=True)
class Normalization:
    """Per-band input scaling: ``(value - mean) / std`` in the raster's own units.

    ``mode="scale"`` is the common "divide by 255" case (mean 0, std = scale) and is kept as a
    separate mode only so the card says what was meant.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    mode: Literal["meanstd", "scale"] = "meanstd"

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ConfigError(f"normalization has {len(self.mean)} means but {len(self.std)} stds")
        bad = [s for s in self.std if not (math.isfinite(s) and s > 0)]
        if bad:
            raise ConfigError(f"normalization std must be positive and finite, got {bad}")

    @classmethod
    def from_scale(cls, scale: float, n_bands: int) -> Normalization:
        return cls(mean=(0.0,) * n_bands, std=(float(scale),) * n_bands, mode="scale")

    @classmethod
    def from_dict(cls, d: dict[str, Any], n_bands: int) -> Normalization:
        if "scale" in d:
            return cls.from_scale(float(d["scale"]), n_bands)
        try:
            return cls(mean=tuple(float(v) for v in d["mean"]),
                       std=tuple(float(v) for v in d["std"]), mode=d.get("mode", "meanstd"))
        except KeyError as e:
            raise ConfigError(f"normalization needs 'mean' and 'std' (or 'scale'); missing {e}") \
                from None

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "mode": self.mode}

    def apply(self, data: np.ndarray, valid: np.ndarray, out: np.ndarray | None = None
              ) -> np.ndarray:
        """``(value - mean) / std`` of ``(bands, ...)`` raster values as float32; no-data
        pixels (``valid`` False) and NaN/inf become 0, the band mean. ``out``: a float32
        array of ``data``'s shape to write into (a slot of a batch) instead of a new one."""
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1, *([1] * (data.ndim - 1)))
        inv_std = (1.0 / np.asarray(self.std, dtype=np.float32)).reshape(mean.shape)
        if out is None:
            out = data.astype(np.float32)
        else:
            out[...] = data
        out -= mean
        out *= inv_std
        if data.dtype.kind == "f":  # NaN/inf in one band of an otherwise valid pixel
            np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if not valid.all():
            out[..., ~valid] = 0.0
        return out


@dataclass(frozen=True)
class ModelCard:
    """What a model expects and what it predicts.

    ``arch`` is the registry config (``{"arch": "deeplabv3plus", "encoder_name": ..., ...}``);
    ``bands`` names the input bands in the order the model takes them; ``dtype`` is the raster
    dtype the normalization was computed for.
    """

    arch: dict[str, Any]
    bands: tuple[str, ...]
    classes: tuple[str, ...]
    normalization: Normalization
    dtype: str = "uint8"
    colors: tuple[tuple[int, int, int], ...] = ()
    patch_px: int = 512
    pixel_size_m: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    name: str = "agriseg-model"
    description: str = ""
    agriseg_version: str = __version__

    def __post_init__(self) -> None:
        if self.dtype not in SUPPORTED_DTYPES:
            raise ConfigError(f"model card dtype {self.dtype!r} is not one of {SUPPORTED_DTYPES}")
        if len(self.normalization.mean) != len(self.bands):
            raise ConfigError(f"model card lists {len(self.bands)} bands but normalization has "
                              f"{len(self.normalization.mean)} values")
        if len(self.classes) < 2:
            raise ConfigError("a model needs at least 2 classes (0 is background/soil)")
        if not self.colors:
            cols = tuple(fallback_color(i) for i in range(len(self.classes)))
            object.__setattr__(self, "colors", cols)
        elif len(self.colors) != len(self.classes):
            raise ConfigError(f"{len(self.colors)} colours for {len(self.classes)} classes")
        if self.patch_px <= 0:
            raise ConfigError(f"patch size must be positive, got {self.patch_px}")

    @property
    def in_channels(self) -> int:
        return len(self.bands)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["normalization"] = self.normalization.to_dict()
        d["bands"] = list(self.bands)
        d["classes"] = list(self.classes)
        d["colors"] = [list(c) for c in self.colors]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def summary(self) -> dict[str, Any]:
        """The parts that decide what the model can read, as plain values."""
        return {"name": self.name, "arch": dict(self.arch), "bands": list(self.bands),
                "dtype": self.dtype, "classes": list(self.classes), "patch_px": self.patch_px,
                "pixel_size_m": self.pixel_size_m}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        try:
            bands = tuple(str(b) for b in d["bands"])
            return cls(
                arch=dict(d["arch"]), bands=bands, classes=tuple(str(c) for c in d["classes"]),
                normalization=Normalization.from_dict(d["normalization"], len(bands)),
                dtype=str(d.get("dtype", "uint8")),
                colors=tuple(tuple(int(v) for v in c) for c in d.get("colors", ())),
                patch_px=int(d.get("patch_px", 512)),
                pixel_size_m=None if d.get("pixel_size_m") is None else float(d["pixel_size_m"]),
                metrics=dict(d.get("metrics", {})), name=str(d.get("name", "agriseg-model")),
                description=str(d.get("description", "")),
                agriseg_version=str(d.get("agriseg_version", "unknown")),
            )
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise CheckpointError(f"model card is incomplete or malformed: {e!r}") from None

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"model card is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise CheckpointError("model card is not a JSON object")
        return cls.from_dict(d)
