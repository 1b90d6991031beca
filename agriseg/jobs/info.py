"""``agriseg info``: what is in a raster and, given a model, whether the raster fits it.

A job above two layers: the raster's description (:mod:`agriseg.raster.info`) and the model
card's fit check (:mod:`agriseg.models.fit`). Only the card is read from the checkpoint (no
weights, no code), so this never builds a network.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from agriseg.models.fit import check_fit, fit_lines
from agriseg.raster.info import describe, format_info
from agriseg.raster.io import band_names, open_raster


def raster_info(path: str | os.PathLike, *, model: str | os.PathLike | None = None,
                bands: Sequence[int] | None = None) -> dict[str, Any]:
    """Describe the raster at ``path``; with ``model`` (a checkpoint), also whether it fits.

    A raster that does not fit is *reported* under ``"fit"``, not raised: this is a report,
    ``predict`` is what refuses. Unreadable inputs raise the usual
    :class:`~agriseg.errors.AgrisegError` subclasses.
    """
    card = None
    if model is not None:
        from agriseg.models.checkpoint import read_card  # imports torch: only when asked

        card = read_card(model)
    with open_raster(path) as src:
        info = describe(src)
        if card is not None:
            info["model"] = card.summary()
            info["fit"] = check_fit(src, card, bands).summary(band_names(src))
    info["path"] = str(path)
    return info


def format_raster_info(info: dict[str, Any]) -> str:
    """The human-readable report of a :func:`raster_info` dict."""
    text = format_info(info)
    if "model" in info:
        text += "\n" + "\n".join(fit_lines(info["model"], info["fit"]))
    return text
