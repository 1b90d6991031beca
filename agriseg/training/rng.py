"""Reproducible training: every random number generator seeded, saved and restored.

A run is repeatable from its config and seed, and a resumed run continues exactly as if it had
never stopped, so every generator that training might draw from is covered: Python's
``random``, NumPy's global generator, torch's CPU generator and each CUDA device's. (agriseg's
own windows and augmentation draw from ``numpy.random.default_rng((seed, epoch, item))``, which
needs no state at all; the global ones are covered for the libraries underneath.) With
``deterministic`` torch is also asked for deterministic kernels (cuDNN without autotuning on a
GPU), and the previous settings are restored when training ends, so importing agriseg into a
larger program changes nothing there.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator, torch's CPU and every CUDA device."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)  # lazily applied: no CUDA context is created here


@contextlib.contextmanager
def reproducible(seed: int, deterministic: bool = True) -> Iterator[None]:
    """Seed everything; with ``deterministic``, use deterministic kernels until the block ends.

    Operations that have no deterministic implementation warn rather than fail
    (``warn_only``); on CUDA the cuBLAS workspace is pinned as PyTorch documents.
    """
    seed_everything(seed)
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2:]


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every generator's state as tensors plus JSON-ready values (no pickles)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors = {"rng.torch": torch.get_rng_state(),
               "rng.numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    version, internal, gauss_next = random.getstate()
    values = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
              "python": [version, list(internal), gauss_next]}
    return tensors, values


def set_rng_state(tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (states saved before it existed: torch's only)."""
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.numpy" in tensors and "numpy" in values:
        kind, pos, has_gauss, gauss = values["numpy"]
        keys = tensors["rng.numpy"].numpy().astype(np.uint32)
        np.random.set_state((kind, keys, pos, has_gauss, gauss))
    if "python" in values:
        version, internal, gauss_next = values["python"]
        random.setstate((version, tuple(internal), gauss_next))
    cuda = [tensors[k] for k in sorted(tensors, key=_cuda_index) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _cuda_index(key: str) -> int:
    return int(key.rsplit(".", 1)[1]) if key.startswith("rng.cuda.") else -1
