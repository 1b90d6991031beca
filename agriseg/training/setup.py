"""Everything a training run needs before its first step, checked before any training starts.

Samples are paired and split by image, every input is validated (one clear error naming the
file), the bands are fixed by name, the normalization statistics are measured on the training
images, and the window datasets are built. The result is a :class:`TrainSetup`, from which the
model card is made, so the card says exactly what the network was trained on.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agriseg.models.card import ModelCard, Normalization
from agriseg.raster.io import band_names, open_raster, pixel_size_m
from agriseg.samples import Sample, pair_samples, split_samples
from agriseg.training.augment import Augment
from agriseg.training.checks import image_bands, validate_samples
from agriseg.training.config import TrainConfig
from agriseg.training.data import FixedWindows, WindowDataset
from agriseg.training.stats import band_statistics

DEFAULT_ARCH = "deeplabv3plus"


@dataclass
class TrainSetup:
    """The checked inputs of a run: bands, their statistics, the split and the datasets."""

    bands: list[str]
    dtype: str
    pixel_size_m: float | None
    normalization: Normalization
    train_samples: list[Sample]
    val_samples: list[Sample]
    train_ds: WindowDataset
    val_ds: FixedWindows

    def card(self, cfg: TrainConfig) -> ModelCard:
        """The model card of a network trained on this setup (an epoch's metrics are added by
        :func:`with_metrics`)."""
        colors = tuple(tuple(c) for c in cfg.colors) if cfg.colors else ()
        return ModelCard(arch=arch_config(cfg), bands=tuple(self.bands),
                         classes=tuple(cfg.classes), normalization=self.normalization,
                         dtype=self.dtype, colors=colors, patch_px=cfg.patch_px,
                         pixel_size_m=self.pixel_size_m, name=cfg.name,
                         description=cfg.description)

    def write_split(self, path: Path) -> None:
        """``split.json``: which images trained and which validated."""
        path.write_text(json.dumps({"train": [str(s.image) for s in self.train_samples],
                                    "validation": [str(s.image) for s in self.val_samples]},
                                   indent=2))


def read_split(path: str | Path) -> dict[str, list[Path]]:
    """A run's ``split.json`` (:meth:`TrainSetup.write_split`): its ``train`` and
    ``validation`` image paths."""
    split = json.loads(Path(path).read_text())
    return {k: [Path(p) for p in split[k]] for k in ("train", "validation")}


def arch_config(cfg: TrainConfig) -> dict[str, Any]:
    """The registry config of the network (DeepLabV3+ unless ``arch.arch`` says otherwise)."""
    return {"arch": DEFAULT_ARCH, **cfg.arch}


def prepare(cfg: TrainConfig) -> TrainSetup:
    """Pair, split, check, measure and build the datasets; raises before any training."""
    samples = pair_samples(cfg.images, cfg.labels, label_field=cfg.label_field, aoi=cfg.aoi)
    train_s, val_s = split_samples(samples, val_fraction=cfg.val_fraction,
                                   val_images=cfg.val_images, seed=cfg.seed)
    with open_raster(train_s[0].image) as src:
        names = band_names(src)
        bands = list(cfg.bands or [names[i - 1] for i in image_bands(src, None)])
        dtype, pixel = src.dtypes[0], pixel_size_m(src)
    validate_samples(samples, bands=bands, num_classes=len(cfg.classes),
                     label_field=cfg.label_field, classes=cfg.classes)
    norm = band_statistics(train_s, bands, seed=cfg.seed)
    kw = dict(patch_px=cfg.patch_px, bands=bands, normalization=norm,
              num_classes=len(cfg.classes), classes=cfg.classes)
    train_ds = WindowDataset(train_s, length=cfg.windows_per_epoch, seed=cfg.seed,
                             class_balance=cfg.class_balance,
                             augment=Augment.from_config(cfg.augment), **kw)
    val_ds = FixedWindows(val_s or train_s, **kw)
    return TrainSetup(bands=bands, dtype=dtype, pixel_size_m=pixel, normalization=norm,
                      train_samples=train_s, val_samples=val_s, train_ds=train_ds,
                      val_ds=val_ds)


def with_metrics(card: ModelCard, row: dict[str, Any]) -> ModelCard:
    """``card`` carrying an epoch's metrics (everything in ``row`` but the learning rate)."""
    return dataclasses.replace(card, metrics={k: v for k, v in row.items() if k != "lr"})
