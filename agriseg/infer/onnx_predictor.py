"""Batched inference with ONNX Runtime: the same contract as :class:`~agriseg.infer.predictor.
Predictor` (normalized numpy patches in, float32 logits out), without PyTorch.

An exported model (:func:`agriseg.models.onnx_export.export_onnx`) carries its model card in
its metadata, so :func:`read_onnx_card` gives bands, classes, normalization and patch size
from the file alone. This module imports neither torch nor the ``onnx`` package: a cached
export maps a field with ONNX Runtime, numpy and GDAL only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from agriseg.errors import CheckpointError, ConfigError, InputNotFoundError, first_line
from agriseg.models.card import ModelCard

META_PREFIX = "agriseg."


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError('the ONNX backend needs ONNX Runtime: pip install "agriseg[onnx]"') \
            from None
    return onnxruntime


class OnnxPredictor:
    """Run an exported agriseg model on batches ``(N, C, H, W)`` with ONNX Runtime (CPU).

    ``threads``: intra-op threads (None: ONNX Runtime's default, all physical cores).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        ort = _ort()
        path = Path(path)
        if not path.is_file():
            raise InputNotFoundError(f"{path}: ONNX model not found")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ONNX Runtime's errors have no common base
            raise CheckpointError(f"{path}: not a readable ONNX model: {first_line(e)}") \
                from None
        self.meta = _agriseg_meta(self.session, path)
        self.card = ModelCard.from_json(self.meta["model_card"])
        self.input_divisor = int(self.meta.get("input_divisor", "1"))
        self.input_name = self.session.get_inputs()[0].name
        self.path = path

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run(None, {self.input_name: x})[0]


def _agriseg_meta(session, path: Path) -> dict[str, str]:
    custom = session.get_modelmeta().custom_metadata_map or {}
    meta = {k.removeprefix(META_PREFIX): v for k, v in custom.items()
            if k.startswith(META_PREFIX)}
    if "model_card" not in meta:
        raise CheckpointError(f"{path}: an ONNX model, but not one exported by agriseg (no "
                              "model card in its metadata); export it with 'agriseg export'")
    if meta.get("output") != "logits":
        raise CheckpointError(f"{path}: the model's output is {meta.get('output')!r}; agriseg "
                              "needs raw logits (re-export with 'agriseg export')")
    return meta


def read_onnx_card(path: str | os.PathLike) -> ModelCard:
    """The model card inside an exported ONNX model."""
    return OnnxPredictor(path, threads=1).card
