"""Model registry: build any supported segmentation network from one small config.

One factory with one parameter vocabulary (``arch, encoder_name, encoder_weights, in_channels,
classes``) so a model card's ``arch`` dict is enough to rebuild the network. The multiscale
context decoders come from segmentation-models-pytorch: DeepLabV3+ (ASPP, the default), PSPNet
(pyramid pooling), UPerNet (PPM + FPN), FPN and U-Net. ``encoder_weights`` is ``None`` (random
initialization: tests, the demo and the default model), a local weights file, or an smp weight
name such as ``imagenet``, which smp downloads (see :mod:`agriseg.models.encoder_weights`).
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from agriseg.errors import CheckpointError, ConfigError, first_line
from agriseg.models.encoder_weights import is_weights_file, load_encoder_weights

DEFAULT_ARCH = "deeplabv3plus"
DEFAULT_ENCODER = "resnet34"


@dataclass(frozen=True)
class ArchSpec:
    name: str
    description: str
    build: Callable[..., nn.Module]
    uses_encoder: bool = True
    module: str | None = None  # agriseg's own architectures: where they are defined
    default_encoder: str | None = None  # for architectures with their own backbones
    # smp's ASPP and UPerNet pooling branches put BatchNorm on a 1x1 map, which cannot train on
    # one sample: training batches must hold at least this many
    min_train_batch: int = 1


def _own(name: str, description: str, module: str, class_name: str) -> ArchSpec:
    return ArchSpec(name, description, _agriseg_builder(module, class_name), module=module)


def _smp_builder(class_name: str) -> Callable[..., nn.Module]:
    def build(encoder_name: str, in_channels: int, classes: int,
              smp_weights: str | None = None, **kw: Any) -> nn.Module:
        import segmentation_models_pytorch as smp

        cls = getattr(smp, class_name)
        # smp forwards unknown keywords to the encoder, which may silently drop a typo
        params = inspect.signature(cls.__init__).parameters
        known = {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD} - {"self"}
        unknown = sorted(set(kw) - known)
        if unknown:
            raise TypeError(f"unexpected options {unknown}; valid: {', '.join(sorted(known))}")
        return cls(encoder_name=encoder_name, encoder_weights=smp_weights,
                   in_channels=in_channels, classes=classes, **kw)
    return build


def _agriseg_builder(module: str, class_name: str) -> Callable[..., nn.Module]:
    """A builder for one of agriseg's own architectures (:mod:`agriseg.models.archs`)."""
    def build(encoder_name: str, in_channels: int, classes: int,
              smp_weights: str | None = None, **kw: Any) -> nn.Module:
        import importlib

        cls = getattr(importlib.import_module(module), class_name)
        params = inspect.signature(cls.__init__).parameters
        known = {n for n in params if n != "self"} - {"encoder_name", "in_channels", "classes"}
        unknown = sorted(set(kw) - known)
        if unknown:
            raise TypeError(f"unexpected options {unknown}; valid: {', '.join(sorted(known))}")
        return cls(encoder_name=encoder_name, in_channels=in_channels, classes=classes,
                   smp_weights=smp_weights, **kw)
    return build


def _pixel_builder(encoder_name: str, in_channels: int, classes: int, hidden: int = 16,
                   **kw: Any) -> nn.Module:
    from agriseg.models.pixel import PixelMLP

    if kw:
        raise TypeError(f"unexpected options {sorted(kw)}")
    return PixelMLP(in_channels=in_channels, out_channels=classes, hidden=hidden)


ARCHITECTURES: dict[str, ArchSpec] = {
    "deeplabv3plus": ArchSpec("deeplabv3plus", "DeepLabV3+: ASPP multiscale context + decoder "
                              "(default)", _smp_builder("DeepLabV3Plus"), min_train_batch=2),
    "pspnet": ArchSpec("pspnet", "PSPNet: pyramid pooling module (PPM); smp's, on the encoder's "
                       "first 3 stages (the deeper ones are built but unused)",
                       _smp_builder("PSPNet")),
    "upernet": ArchSpec("upernet", "UPerNet: PPM on the deepest features + FPN fusion",
                        _smp_builder("UPerNet"), min_train_batch=2),
    "fpn": ArchSpec("fpn", "Feature Pyramid Network", _smp_builder("FPN")),
    "deeplab": _own("deeplab", "DeepLabV3+ from agriseg's ASPP (its pooling branch trains at "
                    "batch size 1)", "agriseg.models.archs.deeplab", "DeepLabV3PlusNet"),
    "ppm": _own("ppm", "PSPNet from agriseg's pyramid pooling module (bins 1/2/3/6)",
                "agriseg.models.archs.ppm", "PPMNet"),
    "gcn": _own("gcn", "Global Convolutional Network: large separable kernels and boundary "
                "refinement, fused top-down", "agriseg.models.archs.gcn", "GCNNet"),
    "sfnet": _own("sfnet", "SFNet: flow alignment modules warp coarse features onto fine ones",
                  "agriseg.models.archs.sfnet", "SFNet"),
    "pointrend": _own("pointrend", "PointRend: a point head re-predicts the most uncertain "
                      "pixels from stride-4 features", "agriseg.models.archs.pointrend",
                      "PointRendNet"),
    "uctransnet": _own("uctransnet", "UCTransNet: channel-wise cross fusion transformer on the "
                       "skips, channel cross attention in the U-Net decoder",
                       "agriseg.models.archs.uctransnet", "UCTransNet"),
    "bisenetv2": _own("bisenetv2", "BiSeNet V2: detail and semantic branches fused by bilateral "
                      "guided aggregation", "agriseg.models.archs.bisenetv2", "BiSeNetV2"),
    "neat": _own("neat", "NEAT: a decoder head that grows by function-preserving widening and "
                 "deepening (our construction)", "agriseg.models.archs.neat", "NEATNet"),
    "stdc": ArchSpec("stdc", "STDC-Seg: STDC backbone (stdc1/stdc2 as the encoder name), "
                     "attention refinement and fusion, detail guidance in training",
                     _agriseg_builder("agriseg.models.archs.stdc", "STDCSeg"),
                     uses_encoder=False, module="agriseg.models.archs.stdc",
                     default_encoder="stdc1"),
    "denseaspp": _own("denseaspp", "DenseASPP: densely cascaded atrous layers (3-24) on a "
                      "dilated encoder", "agriseg.models.archs.denseaspp", "DenseASPPNet"),
    "unet": ArchSpec("unet", "U-Net with skip connections", _smp_builder("Unet")),
    "pixel": ArchSpec("pixel", "per-pixel spectral classifier (1x1 convolutions, no context)",
                      _pixel_builder, uses_encoder=False),
}


def list_architectures() -> list[ArchSpec]:
    return list(ARCHITECTURES.values())


def parameter_count(arch: str, encoder_name: str | None = None, classes: int = 3,
                    in_channels: int = 3) -> int:
    """Parameters of ``arch`` with its default options, built on PyTorch's meta device (no
    memory, no initialization: a fraction of a second); ``encoder_name`` defaults to the
    architecture's own backbone or :data:`DEFAULT_ENCODER`."""
    import torch

    if encoder_name is None:
        spec = ARCHITECTURES[arch]
        encoder_name = spec.default_encoder or DEFAULT_ENCODER
    with torch.device("meta"):
        model = create_model(arch, encoder_name, in_channels=in_channels, classes=classes)
    return sum(p.numel() for p in model.parameters())


def list_encoders() -> list[str]:
    """Encoder names smp can build (weights are never downloaded by agriseg)."""
    import segmentation_models_pytorch as smp

    return sorted(smp.encoders.get_encoder_names())


def _unknown(kind: str, name: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    listed = ", ".join(valid) if len(valid) <= 12 else "run 'agriseg models' to list them"
    return ConfigError(f"unknown {kind} {name!r}{hint} (valid: {listed})")


def create_model(arch: str = DEFAULT_ARCH, encoder_name: str = DEFAULT_ENCODER,
                 encoder_weights: str | os.PathLike | None = None, in_channels: int = 3,
                 classes: int = 3, **kw: Any) -> nn.Module:
    """Build a segmentation model; extra keyword arguments go to the architecture.

    ``encoder_weights`` may name a local state-dict file (``.safetensors``, or a ``.pt``/``.pth``
    loaded with ``weights_only=True``) for the encoder, or an smp weight name such as
    ``imagenet``, which smp downloads where the network allows it (agriseg's tests, demo and
    default model never do).
    """
    key = arch.lower().replace("_", "").replace("-", "")
    spec = ARCHITECTURES.get(key)
    if spec is None:
        raise _unknown("architecture", arch, list(ARCHITECTURES))
    if in_channels < 1 or classes < 2:
        raise ConfigError(f"need in_channels >= 1 and classes >= 2, got {in_channels}, {classes}")
    if spec.uses_encoder and not encoder_name.startswith("tu-") \
            and encoder_name not in list_encoders():
        raise _unknown("encoder", encoder_name, list_encoders())
    named = encoder_weights is not None and not is_weights_file(encoder_weights)
    if named and spec.uses_encoder:
        kw["smp_weights"] = str(encoder_weights)
    try:
        model = spec.build(encoder_name=encoder_name, in_channels=in_channels, classes=classes,
                           **kw)
    except TypeError as e:
        raise ConfigError(f"invalid option for architecture {key!r}: {e}") from None
    except (ValueError, AssertionError) as e:
        raise ConfigError(f"cannot build {key!r} with encoder {encoder_name!r}: {e}") from None
    except KeyError as e:
        if not named:
            raise
        raise ConfigError(f"encoder weights {str(encoder_weights)!r}: {e.args[0] if e.args else e}"
                          "; or name a local weights file") from None
    except OSError as e:
        if not named:
            raise
        raise CheckpointError(
            f"cannot fetch {str(encoder_weights)!r} weights for encoder {encoder_name!r} "
            f"({first_line(e)}); smp downloads named weights, which needs the internet: "
            "download them once and pass the local file as encoder_weights") from None
    if encoder_weights is not None and not named:
        load_encoder_weights(model, encoder_weights)
    return model


def model_from_config(config: dict[str, Any], in_channels: int, classes: int) -> nn.Module:
    """Build from a card's ``arch`` dict: ``{"arch": ..., "encoder_name": ..., **options}``."""
    cfg = dict(config)
    arch = cfg.pop("arch", DEFAULT_ARCH)
    encoder = cfg.pop("encoder_name", DEFAULT_ENCODER)
    cfg.pop("encoder_weights", None)  # weights come from the checkpoint
    return create_model(arch, encoder, None, in_channels=in_channels, classes=classes, **cfg)


def input_divisor(model: nn.Module) -> int:
    """Patch sides must be a multiple of this: the encoder's output stride, else 1."""
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "output_stride"):
        # even where smp would interpolate odd sizes, aligned patches keep features aligned
        return int(encoder.output_stride)
    return int(getattr(model, "input_divisor", 1))
