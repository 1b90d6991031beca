"""Resumable training state as data: optimizer, scheduler, epoch and RNGs in safetensors+JSON.

Pickled optimizer files can run code when loaded; here every tensor of the optimizer state and
of the random generators (torch CPU and CUDA, NumPy's global one) goes into a safetensors file
and everything else (hyper-parameters, scheduler counters, the epoch, the best score, Python's
``random``) into its JSON header, so ``--resume`` never unpickles anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from agriseg.errors import CheckpointError, InputNotFoundError
from agriseg.outputs import atomic_output
from agriseg.training.rng import rng_state, set_rng_state

FORMAT = "agriseg.training-state"


def save_train_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer,
                     scheduler: Any, info: dict[str, Any]) -> None:
    """Write the optimizer/scheduler state and ``info`` (epoch, best metric...) to ``path``."""
    from safetensors.torch import save_file

    opt = optimizer.state_dict()
    tensors, rng_values = rng_state()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in opt["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"opt.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    meta = {"format": FORMAT, "param_groups": opt["param_groups"], "scalars": scalars,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_values, "info": info}
    with atomic_output(path, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata={"agriseg_train_state": json.dumps(meta)})


def load_train_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer,
                     scheduler: Any) -> dict[str, Any]:
    """Restore optimizer, scheduler and every RNG from ``path``; return the saved ``info``."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: training state not found (nothing to resume)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("agriseg_train_state", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable training state: {e}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an agriseg training state")
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, values in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        if scheduler is not None and meta.get("scheduler") is not None:
            scheduler.load_state_dict(meta["scheduler"])
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: training state does not fit this model/config: {e}") \
            from None
    set_rng_state(tensors, meta.get("rng", {}))
    return meta["info"]
