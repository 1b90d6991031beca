"""Training configuration: one YAML file, every key overridable from the command line.

A run is fully described by its config (and seed), which is saved beside the checkpoints, so
``agriseg train --config run/config.yaml`` repeats it. Overrides use dotted keys with YAML
values: ``epochs=3 arch.encoder_name=resnet18 loss.class_weights=[1,2,4]``.

``arch`` is a mapping (``{arch: deeplab, encoder_name: resnet18, ...}``) or the path of a YAML
file whose ``arch:`` key is one, such as ``configs/models/deeplab.yaml``; options given as
overrides after it (``arch.output_stride=8``) change the file's.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agriseg.errors import ConfigError, InputNotFoundError, first_line
from agriseg.models.encoder_weights import is_weights_file


@dataclass
class TrainConfig:
    images: str | list[str] = ""
    labels: str | list[str] | None = None
    label_field: str | None = None
    aoi: str | None = None
    val_images: list[str] | None = None
    val_fraction: float = 0.25
    seed: int = 0
    bands: list[str] | None = None
    classes: list[str] = field(default_factory=lambda: ["soil", "crop", "weed"])
    colors: list[list[int]] | None = None
    arch: dict[str, Any] = field(default_factory=lambda: {"arch": "deeplabv3plus",
                                                          "encoder_name": "resnet18"})
    encoder_weights: str | None = None
    patch_px: int = 256
    batch_size: int = 8
    epochs: int = 20
    windows_per_epoch: int = 256
    class_balance: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    grad_clip: float = 1.0
    loss: dict[str, Any] = field(default_factory=lambda: {"ce_weight": 1.0, "dice_weight": 1.0,
                                                          "class_weights": "auto"})
    augment: dict[str, Any] = field(default_factory=dict)
    early_stopping: int = 8
    # validate every N epochs (and always after the last): the windows of every validation
    # image are scored each time, which can cost a third of a short epoch
    val_every: int = 1
    max_minutes: float | None = None  # stop after the epoch that passes this wall-clock budget
    budget_minutes: float | None = None  # measure, then choose epochs to end on time (budget.py)
    amp: bool = True
    deterministic: bool = True  # deterministic kernels (and no cuDNN autotuning) while training
    device: str = "auto"
    num_workers: int = 0
    out_dir: str = "runs/agriseg"
    name: str = "agriseg-model"
    description: str = ""

    def validate(self) -> None:
        if not self.images:
            raise ConfigError("training config needs 'images' (a folder, glob or list)")
        for key in ("patch_px", "batch_size", "epochs", "windows_per_epoch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 <= self.class_balance <= 1:
            raise ConfigError(f"class_balance must be in [0, 1], got {self.class_balance}")
        if self.schedule not in ("cosine", "onecycle", "constant"):
            raise ConfigError(f"schedule {self.schedule!r} is not one of cosine, onecycle, "
                              "constant")
        if not isinstance(self.val_every, int) or self.val_every < 1:
            raise ConfigError(f"val_every must be a whole number of epochs >= 1, got "
                              f"{self.val_every!r}")
        if self.budget_minutes is not None:
            if not self.budget_minutes > 0:
                raise ConfigError(f"budget_minutes must be > 0, got {self.budget_minutes}")
            if self.max_minutes:
                raise ConfigError("budget_minutes and max_minutes both limit the time; give "
                                  "one (a budget ends the schedule on time, max_minutes stops "
                                  "after the epoch that passes it)")
        if len(self.classes) < 2:
            raise ConfigError("need at least 2 classes (0 is background/soil)")
        from agriseg.models.registry import ARCHITECTURES, DEFAULT_ARCH

        arch = self.arch.get("arch", DEFAULT_ARCH) if isinstance(self.arch, dict) else None
        spec = ARCHITECTURES.get(arch)
        if spec is not None and self.batch_size < spec.min_train_batch:
            raise ConfigError(f"{arch} cannot train with batch_size {self.batch_size}: its "
                              "image-pooling branch normalizes a 1x1 map over the batch; use "
                              f"batch_size >= {spec.min_train_batch}, or arch 'deeplab' (agriseg's "
                              "ASPP, which trains at batch size 1)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML config (relative paths are taken from the config's folder) and apply
    ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputNotFoundError(f"{p}: training config not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: a training config is a mapping of keys to values")
        data = _arch_file(_resolve_paths(data, p.parent), p.parent)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value (e.g. epochs=5)")
        _set(data, key.strip(), yaml.safe_load(raw) if raw else None)
        data = _arch_file(data, Path.cwd())  # arch.x=... after arch=FILE changes the file's
    return _from_dict(data)


def _arch_file(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``arch`` given as a file (relative to ``base``) replaced by that file's mapping."""
    path = data.get("arch")
    if not isinstance(path, str):
        return data
    p = base / path
    if not p.is_file():
        raise InputNotFoundError(f"{p}: architecture config not found (arch: a mapping or a "
                                 "YAML file with an 'arch:' mapping, e.g. configs/models/)")
    try:
        arch = (yaml.safe_load(p.read_text()) or {}).get("arch")
    except (yaml.YAMLError, AttributeError) as e:
        raise ConfigError(f"{p}: not an architecture config: {first_line(e)}") from None
    if not isinstance(arch, dict) or "arch" not in arch:
        raise ConfigError(f"{p}: an architecture config has an 'arch:' mapping naming the "
                          "architecture ({arch: deeplab, encoder_name: resnet18, ...})")
    return {**data, "arch": dict(arch)}


def resolve_config(config: TrainConfig | str | os.PathLike | dict[str, Any],
                   overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A checked :class:`TrainConfig` from a config object, a YAML file or a dict of keys, with
    ``overrides`` (whole keys: ``epochs=5``, ``arch={...}``) applied; relative paths in a dict
    or the overrides are taken from the current folder."""
    if isinstance(config, TrainConfig):
        data = config.to_dict()
    elif isinstance(config, dict):
        data = dict(config)
    else:
        data = load_config(config).to_dict()
    return _from_dict({**data, **(overrides or {})})


def _from_dict(data: dict[str, Any]) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown training config keys {unknown}; valid: {sorted(known)}")
    merged = _arch_file(_resolve_paths({**TrainConfig().to_dict(), **data}, Path.cwd()),
                        Path.cwd())
    cfg = TrainConfig(**merged)  # paths are absolute from here on: a saved config reruns as is
    cfg.validate()
    return cfg


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {} if part not in ("arch", "loss", "augment")
                               else dict(getattr(TrainConfig(), part)))
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is not a mapping")
    node[parts[-1]] = value


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths taken from ``base``; ``encoder_weights`` only when it names a file (a
    weight name such as ``imagenet`` is smp's, not a path)."""
    def fix(v: Any) -> Any:
        if isinstance(v, str) and v and not Path(v).is_absolute():
            return os.path.normpath((base / v).absolute())
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    out = dict(data)
    for key in ("images", "labels", "aoi", "encoder_weights", "out_dir"):
        value = out.get(key)
        if value is None or (key == "encoder_weights" and not is_weights_file(value, base)):
            continue
        out[key] = fix(value)
    return out


def save_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
