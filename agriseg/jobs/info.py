"""``agriseg info``: what is in a raster and, given a model, whether the raster fits it.

A job above two layers: the raster's description (:mod:`agriseg.raster.info`) and the model
card's fit check (:mod:`agriseg.infer.fit`). Only the card is read from the checkpoint (no
weights, no code), so this never builds a network.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from agriseg.infer.engines import model_card
from agriseg.infer.fit import check_fit
from agriseg.raster.info import describe, format_info, number_text
from agriseg.raster.io import band_names, open_raster


def raster_info(path: str | os.PathLike, *, model: str | os.PathLike | None = None,
                bands: Sequence[int] | None = None, resample: str = "auto",
                input_range: str = "auto") -> dict[str, Any]:
    """Describe the raster at ``path``; with ``model`` (a checkpoint), also whether it fits
    when predicted with ``resample`` and ``input_range`` (see
    :class:`~agriseg.options.PredictOptions`), and what prediction would adapt.

    A raster that does not fit is *reported* under ``"fit"``, not raised: this is a report,
    ``predict`` is what refuses. Unreadable inputs raise the usual
    :class:`~agriseg.errors.AgrisegError` subclasses.
    """
    card = None
    if model is not None:
        card = model_card(model)  # header or ONNX metadata only: no weights, no PyTorch
    with open_raster(path) as src:
        info = describe(src)
        if card is not None:
            info["model"] = card.summary()
            info["fit"] = check_fit(src, card, bands, resample, input_range).summary(
                band_names(src))
    info["path"] = str(path)
    return info


def format_raster_info(info: dict[str, Any]) -> str:
    """The human-readable report of a :func:`raster_info` dict."""
    text = format_info(info)
    if "model" in info:
        text += "\n" + "\n".join(fit_lines(info["model"], info["fit"]))
    return text


def fit_lines(model: dict[str, Any], fit: dict[str, Any]) -> list[str]:
    """The ``info --model`` report lines for a :meth:`ModelCard.summary` and a
    :meth:`FitReport.summary`."""
    arch = dict(model["arch"])
    arch_name = arch.pop("arch", "?")
    extra = ", ".join(f"{k}={v}" for k, v in arch.items())
    px = f" at {number_text(model['pixel_size_m'])} m/px" if model["pixel_size_m"] else ""
    lines = [f"model:        {model['name']} ({arch_name}{', ' + extra if extra else ''})",
             f"  bands:      {', '.join(model['bands'])} ({model['dtype']})",
             f"  classes:    {', '.join(model['classes'])}",
             f"  patch:      {model['patch_px']} px{px}"]
    if fit["fits"]:
        chosen = ", ".join(f"{i} ({n})" for i, n in zip(fit["bands"], fit["band_names"],
                                                         strict=True))
        lines.append(f"fits: yes (bands {chosen})")
    else:
        lines.append("fits: no")
    lines += [f"  problem: {p}" for p in fit["problems"]]
    lines += [f"  adapted: {a}" for a in fit.get("adapted", [])]
    lines += [f"  warning: {w}" for w in fit["warnings"]]
    return lines
