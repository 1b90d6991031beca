"""The options of a prediction and of a vectorization, grouped once for every caller.

``predict``, ``map``, ``evaluate`` (and their CLI commands) share :class:`PredictOptions`;
``vectorize`` and ``map`` share :class:`VectorizeOptions`. Each is checked when it is made, so
a bad value fails before any file is opened, with one message naming the value and what is
allowed. Library functions take an options object and/or the same fields as keywords
(``predict_raster(src, dst, batch_size=4)``); :func:`split_options` sorts keywords into the
objects and refuses unknown names.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, TypeVar

from agriseg.constants import (
    BACKENDS,
    BLEND_MODES,
    DEVICES,
    INPUT_RANGE_MODES,
    RESAMPLE_MODES,
    TTA_MODES,
)
from agriseg.errors import ConfigError

T = TypeVar("T", "PredictOptions", "VectorizeOptions")


@dataclass(frozen=True)
class PredictOptions:
    """How a raster is cut into patches and run through the model.

    ``patch_px`` and ``overlap_px``: patch side and overlap in pixels (default: the model
    card's patch size and 1/8 of it). ``batch_size``: patches per forward pass, or ``auto``
    (sized to the GPU's free memory on CUDA, 1 on the CPU). ``device``:
    ``auto`` (CUDA when available), ``cpu`` or ``cuda``. ``blend``: ``hann`` (weighted
    average of overlapping patches) or ``crop`` (each pixel from the nearest patch centre).
    ``bands``: 1-based raster bands in the model's order (default: matched by name, else
    file order). ``amp``: mixed precision on CUDA. ``backend``: ``auto`` (ONNX Runtime on
    the CPU when installed, else PyTorch), ``torch`` or ``onnx``. ``threads``: CPU threads for
    the model and GDAL (default: all cores). ``resample``: ``auto`` reads a raster whose pixel
    size differs from the model's by more than 10% at the model's pixel size (results come
    back on the raster's grid); ``off`` reads it as it is. ``input_range``: ``auto`` maps
    imagery of another dtype than the model's onto the model's range by per-band 2-98%
    percentiles; ``model`` takes values as they are (another dtype is an error);
    ``"MIN,MAX"`` maps that range onto the model's. ``tta``: test-time augmentation,
    ``none``, ``flips`` (identity, horizontal, vertical, both: 4 forward passes) or ``d4``
    (the 8 rotations and reflections of the square): the class probabilities of the
    transformed patches are averaged (:mod:`agriseg.infer.tta`).
    """

    patch_px: int | None = None
    overlap_px: int | None = None
    batch_size: int | str = "auto"
    device: str = "auto"
    blend: str = "hann"
    bands: tuple[int, ...] | None = None
    amp: bool = True
    backend: str = "auto"
    threads: int | None = None
    resample: str = "auto"
    input_range: str = "auto"
    tta: str = "none"

    def __post_init__(self) -> None:
        if self.bands is not None:
            object.__setattr__(self, "bands", tuple(int(b) for b in self.bands))
        if self.blend not in BLEND_MODES:
            raise ConfigError(f"unknown blend mode {self.blend!r}; use one of "
                              f"{', '.join(BLEND_MODES)}")
        object.__setattr__(self, "batch_size", parse_batch_size(self.batch_size))
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise ConfigError(f"unknown device {self.device!r}; use one of {', '.join(DEVICES)}")
        if self.patch_px is not None and self.patch_px < 1:
            raise ConfigError(f"patch size must be positive, got {self.patch_px}")
        if self.overlap_px is not None and self.overlap_px < 0:
            raise ConfigError(f"overlap must be >= 0, got {self.overlap_px}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; use one of "
                              f"{', '.join(BACKENDS)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.resample not in RESAMPLE_MODES:
            raise ConfigError(f"unknown resample mode {self.resample!r}; use one of "
                              f"{', '.join(RESAMPLE_MODES)}")
        object.__setattr__(self, "input_range", parse_input_range(self.input_range))
        if self.tta not in TTA_MODES:
            raise ConfigError(f"unknown test-time augmentation {self.tta!r}; use one of "
                              f"{', '.join(TTA_MODES)}")
        if self.bands is not None and any(b < 1 for b in self.bands):
            raise ConfigError(f"band numbers start at 1, got {list(self.bands)}")

    def summary(self, patch_px: int, overlap_px: int) -> dict[str, Any]:
        """What ``summary.json`` records: the patch size and overlap actually used."""
        return {"patch_px": patch_px, "overlap_px": overlap_px, "batch_size": self.batch_size,
                "device": self.device, "blend": self.blend, "backend": self.backend,
                "bands": list(self.bands) if self.bands is not None else None,
                "resample": self.resample, "input_range": self.input_range,
                "tta": self.tta}


def parse_batch_size(value: Any) -> int | str:
    """A batch size: ``auto`` or an integer >= 1."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"batch size {value!r}: use auto or a whole number >= 1") from None
    if n != value and not isinstance(value, str) or n < 1:
        raise ConfigError(f"batch size must be >= 1 (or auto), got {value!r}")
    return n


def parse_input_range(value: Any) -> str:
    """``auto``, ``model`` or ``"MIN,MAX"`` (two numbers, MIN < MAX), as a canonical string;
    a pair of numbers is accepted too."""
    if isinstance(value, (tuple, list)):
        value = ",".join(str(v) for v in value)
    text = str(value).strip().lower()
    if text in INPUT_RANGE_MODES:
        return text
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"input range {value!r}: use auto, model or MIN,MAX (e.g. "
                          "0,4095)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(f"input range {value!r}: MIN must be below MAX, both finite")
    return f"{lo:.10g},{hi:.10g}"


@dataclass(frozen=True)
class VectorizeOptions:
    """How a class mask becomes polygons.

    ``classes``: names or ids to export (default: every class but background). ``min_area_m2``:
    regions smaller than this merge into their surroundings; ``fill_holes_m2``: background
    holes smaller than this are filled (both before polygonizing). ``simplify_m``: boundary
    tolerance in metres, neighbours keep identical shared edges. ``connectivity``: pixels
    joined by edges (4) or also corners (8). ``crs``: reproject polygons on export.
    """

    classes: tuple[str | int, ...] | None = None
    min_area_m2: float = 0.0
    fill_holes_m2: float = 0.0
    simplify_m: float = 0.0
    connectivity: int = 4
    crs: str | None = None

    def __post_init__(self) -> None:
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "connectivity", int(self.connectivity))
        for name, v in (("min-area", self.min_area_m2), ("fill-holes", self.fill_holes_m2),
                        ("simplify", self.simplify_m)):
            if not v >= 0:
                raise ConfigError(f"--{name} must be >= 0, got {v}")
        if self.connectivity not in (4, 8):
            raise ConfigError(f"connectivity must be 4 or 8, got {self.connectivity}")

    def summary(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes) if self.classes is not None else None
        return d


def with_options(cls: type[T], options: T | None, kw: dict[str, Any]) -> T:
    """``options`` (or the defaults) with the fields named in ``kw`` replaced."""
    base = options if options is not None else cls()
    unknown = sorted(set(kw) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        valid = ", ".join(f.name for f in dataclasses.fields(cls))
        raise TypeError(f"unexpected option(s) {', '.join(unknown)}; {cls.__name__} has: {valid}")
    return dataclasses.replace(base, **kw) if kw else base


def split_options(kw: dict[str, Any], predict: PredictOptions | None = None,
                  vectorize: VectorizeOptions | None = None
                  ) -> tuple[PredictOptions, VectorizeOptions]:
    """Sort keyword options into the two objects; a name neither has is a TypeError."""
    names = {f.name for f in dataclasses.fields(PredictOptions)}
    p_kw = {k: v for k, v in kw.items() if k in names}
    v_kw = {k: v for k, v in kw.items() if k not in names}
    return with_options(PredictOptions, predict, p_kw), \
        with_options(VectorizeOptions, vectorize, v_kw)
