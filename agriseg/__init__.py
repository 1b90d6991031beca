"""agriseg: map crops and weeds in drone and field imagery.

Streaming, seam-free semantic segmentation of GeoTIFF orthomosaics with PyTorch
(segmentation-models-pytorch), from raster to class mask to polygons. The Python API mirrors the
command line, one function per command, always source, then destination, then keywords::

    import agriseg
    agriseg.map_field("field.tif", "field-map/")                # agriseg map
    agriseg.predict("field.tif", "mask.tif", model="m.safetensors")
    agriseg.vectorize("mask.tif", "fields.gpkg", min_area_m2=0.01)
    agriseg.evaluate(["a.tif"], ["a_labels.tif"], model="m.safetensors")
    agriseg.train("configs/train/sample.yaml", epochs=2)
    agriseg.cross_validate("configs/train/sample.yaml", "runs/cv", folds=5)  # train --folds
    agriseg.run_batch(["incoming/"], "maps/", min_age_s=600)  # agriseg batch
    agriseg.prescribe("field-map/", "spray/", formats=("shp", "isoxml"))
    model = agriseg.load_model("m.safetensors")
    agriseg.predict_array(pixels, model).classes

Names are imported on first use, so ``import agriseg`` is quick and does not load PyTorch
(``vectorize`` never needs it). docs/api.md has a runnable example of each.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "predict": ("agriseg.infer.pipeline", "predict_raster"),
    "predict_array": ("agriseg.infer.array", "predict_array"),
    "vectorize": ("agriseg.vector.vectorize", "vectorize_mask"),
    "map_field": ("agriseg.jobs.fieldmap", "map_field"),
    "evaluate": ("agriseg.jobs.evaluate", "evaluate_model"),
    "train": ("agriseg.training.loop", "train"),
    "cross_validate": ("agriseg.crossval", "cross_validate"),
    "run_batch": ("agriseg.batch.run", "run_batch"),
    "prescribe": ("agriseg.spray", "prescribe"),
    "load_model": ("agriseg.models.checkpoint", "load_model"),
    "Model": ("agriseg.models.checkpoint", "Model"),
    "PredictOptions": ("agriseg.options", "PredictOptions"),
    "VectorizeOptions": ("agriseg.options", "VectorizeOptions"),
    "AgrisegError": ("agriseg.errors", "AgrisegError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'agriseg' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
