"""Where the forward pass runs: PyTorch (CPU or CUDA) or ONNX Runtime (CPU), behind one call.

:func:`open_engine` turns a model (a checkpoint path, an exported ``.onnx`` file, a loaded
:class:`~agriseg.models.checkpoint.Model`, or None for the default model) and the options'
``backend``/``device`` into an :class:`Engine`: the model card, the input divisor, and a
function from normalized patches to logits. ``auto`` runs ONNX Runtime on the CPU when it is
installed and PyTorch on CUDA. A checkpoint is exported once and cached by its sha256 in the
user cache folder, so later runs load the ``.onnx`` file and never import PyTorch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agriseg.constants import BACKENDS, CPU_AUTO_BATCH
from agriseg.errors import CheckpointError, ConfigError
from agriseg.hashing import file_sha256
from agriseg.models.card import ModelCard

CACHE_ENV = "AGRISEG_CACHE_DIR"

log = logging.getLogger("agriseg")


@dataclass
class Engine:
    """A model ready to run: ``forward`` maps ``(N, C, H, W)`` float32 patches to logits.

    ``submit`` starts a forward pass and returns a function that waits for its logits (on
    CUDA the work is queued, so the caller can prepare the next batch meanwhile: then
    ``asynchronous`` is True); by default it runs ``forward`` at once.
    ``auto_batch(channels, height, width)`` is the batch size ``--batch-size auto`` means.
    """

    card: ModelCard
    input_divisor: int
    backend: str
    device: str
    forward: Callable[[np.ndarray], np.ndarray]
    model_path: Path | None = None
    submit: Callable[[np.ndarray], Callable[[], np.ndarray]] | None = None
    auto_batch: Callable[[int, int, int], int] | None = None
    asynchronous: bool = False  # ``submit`` returns before the work is done (CUDA)

    def __post_init__(self) -> None:
        if self.submit is None:
            def run_now(batch: np.ndarray) -> Callable[[], np.ndarray]:
                logits = self.forward(batch)
                return lambda: logits

            self.submit = run_now
        if self.auto_batch is None:
            self.auto_batch = lambda channels, height, width: CPU_AUTO_BATCH

    def batch_size(self, requested: int | str, height: int, width: int) -> int:
        """``requested``, or the engine's choice for ``auto`` and patches of that size."""
        if requested != "auto":
            return int(requested)
        return self.auto_batch(self.card.in_channels, height, width)


def is_onnx(model: Any) -> bool:
    return isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".onnx"


def model_card(model: Any) -> ModelCard:
    """The card of any model agriseg runs, read cheaply (no weights, no PyTorch for .onnx)."""
    if is_onnx(model):
        from agriseg.infer.onnx_predictor import read_onnx_card

        return read_onnx_card(model)
    if hasattr(model, "card"):  # a loaded Model or an Engine
        return model.card
    from agriseg.models.default import model_or_default
    from agriseg.models.header import read_card

    return read_card(model_or_default(model))


def open_engine(model: Any, backend: str = "auto", device: str = "auto", amp: bool = True,
                threads: int | None = None) -> Engine:
    """The engine that runs ``model`` with ``backend`` on ``device`` (see the module doc)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if is_onnx(model):
        if backend == "torch":
            raise ConfigError(f"{model}: an ONNX model runs on the onnx backend; give the "
                              ".safetensors checkpoint for --backend torch")
        _refuse_cuda(device, model)
        return _onnx_engine(Path(model), threads)
    if backend == "auto":  # a model already loaded in PyTorch stays there
        loaded = not isinstance(model, (str, os.PathLike)) and model is not None
        backend = "onnx" if not loaded and _has_onnxruntime() and not _wants_cuda(device) \
            else "torch"
    if backend == "onnx":
        _refuse_cuda(device, model)
        target = cached_export(model)
        try:
            return _onnx_engine(target, threads, source=_path_of(model))
        except CheckpointError:  # a damaged cache entry (a full disk, a killed export)
            log.warning("%s: cached ONNX export unreadable; exporting again", target)
            target.unlink(missing_ok=True)
            return _onnx_engine(cached_export(model), threads, source=_path_of(model))
    return _torch_engine(model, device, amp, threads)


def _onnx_engine(path: Path, threads: int | None, source: Path | None = None) -> Engine:
    from agriseg.infer.onnx_predictor import OnnxPredictor

    pred = OnnxPredictor(path, threads=threads)
    return Engine(pred.card, pred.input_divisor, "onnx", "cpu", pred, source or path)


def _torch_engine(model: Any, device: str, amp: bool, threads: int | None) -> Engine:
    import torch

    from agriseg.infer.predictor import Predictor
    from agriseg.models.checkpoint import load_model
    from agriseg.models.registry import input_divisor

    if threads:
        torch.set_num_threads(threads)
    model = load_model(model)
    pred = Predictor(model.net, device=device, amp=amp)
    return Engine(model.card, input_divisor(model.net), "torch", str(pred.device), pred,
                  model.path, submit=pred.submit, auto_batch=pred.max_batch,
                  asynchronous=pred.device.type == "cuda")


def _refuse_cuda(device: str, model: Any) -> None:
    if str(device).startswith("cuda"):
        raise ConfigError(f"the onnx backend runs on the CPU; for --device {device} use "
                          "--backend torch with the .safetensors checkpoint")


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _wants_cuda(device: str) -> bool:
    """Whether ``device`` means CUDA; ``auto`` asks PyTorch only where an NVIDIA driver is
    present at all, so a CPU-only machine never imports it for this question."""
    if device != "auto":
        return str(device).startswith("cuda")
    if not (Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia").exists()):
        return False
    import torch

    return torch.cuda.is_available()


def _path_of(model: Any) -> Path | None:
    if model is None:
        from agriseg.models.default import default_checkpoint

        return default_checkpoint()
    if isinstance(model, (str, os.PathLike)):
        return Path(model)
    return getattr(model, "path", None)


def cache_dir() -> Path:
    """Where exports are cached: ``$AGRISEG_CACHE_DIR`` or the user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir("agriseg"))


def cached_export(model: Any) -> Path:
    """The ONNX export of ``model``'s checkpoint, made once per checkpoint content."""
    source = _path_of(model)
    if source is None:
        raise ConfigError("the onnx backend needs a checkpoint file (a model loaded in memory "
                          "has no file to export and cache); use --backend torch")
    if not source.is_file():
        model_card(source)  # the checkpoint's own error (missing, not a checkpoint...)
    target = cache_dir() / "onnx" / f"{file_sha256(source)}.onnx"
    if target.is_file():
        return target
    from agriseg.models.onnx_export import export_onnx

    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting %s to ONNX (once; cached as %s)", source, target)
    export_onnx(model if model is not None else source, target, overwrite=True)
    return target
