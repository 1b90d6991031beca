"""Export an agriseg checkpoint to ONNX, with its model card inside.

The exported graph takes normalized patches ``(N, C, H, W)`` float32 with a dynamic batch size
and dynamic height and width (multiples of the model's input divisor) and returns the raw
class logits ``(N, K, H, W)``: softmax is *not* included, because agriseg blends overlapping
patches in logit space and takes the softmax of the blended result (as the PyTorch path does),
so both backends feed the stitcher the same numbers. The ONNX file's metadata holds the model
card (``agriseg.model_card``), the input divisor, the output kind and the sha256 of the
checkpoint it came from, so ``agriseg predict -m model.onnx`` needs nothing else.

The TorchScript exporter cannot translate adaptive average pooling to a grid larger than 1x1
when the input's height and width are dynamic (PSPNet's and UPerNet's pyramid pooling): while
exporting, such pooling (smp's and agriseg's PPM alike) is traced as two small matrix products
that compute the same averages (:func:`adaptive_avg_pool`), so the graph pools correctly at any
input size. Global pooling (1x1) is left to the exporter's GlobalAveragePool.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from agriseg import __version__
from agriseg.constants import ONNX_META_PREFIX
from agriseg.errors import CheckpointError, first_line
from agriseg.hashing import file_sha256
from agriseg.models.checkpoint import Model, load_model
from agriseg.models.registry import input_divisor
from agriseg.outputs import atomic_output, check_output

OPSET = 17
INPUT_NAME = "patches"
OUTPUT_NAME = "logits"


def export_onnx(model: str | os.PathLike | Model | None, dst: str | os.PathLike, *,
                opset: int = OPSET, overwrite: bool = False) -> Path:
    """Write ``model`` (a checkpoint path, a loaded :class:`Model`, or None for the default
    model) to ``dst`` as ONNX with its card in the metadata; return ``dst``.

    Raises
    ------
    AgrisegError
        A bad checkpoint, an existing ``dst`` without ``overwrite``, or a network the ONNX
        exporter cannot translate (the message names the operator it stopped at).
    """
    if opset < OPSET:
        raise CheckpointError(f"opset {opset} is too old; agriseg exports opset >= {OPSET}")
    dst = check_output(dst, overwrite)
    model = load_model(model)
    net = model.net.eval().cpu()
    side = _example_side(model.card.patch_px, input_divisor(net))
    example = torch.zeros(1, model.card.in_channels, side, side)
    meta = {
        "model_card": model.card.to_json(),
        "input_divisor": str(input_divisor(net)),
        "output": OUTPUT_NAME,
        "source_sha256": file_sha256(model.path) if model.path else "",
        "agriseg_version": __version__,
    }
    with atomic_output(dst, overwrite) as tmp:
        _export(net, example, tmp, opset)
        _add_metadata(tmp, meta)
    return dst


def _example_side(patch_px: int, divisor: int) -> int:
    """A small example size the network accepts (the exported graph is shape-generic)."""
    return max(divisor, min(patch_px, 256) // divisor * divisor)


def _export(net: torch.nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    dynamic = {0: "batch", 2: "height", 3: "width"}
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            kw = {"dynamo": False} if "dynamo" in _export_params() else {}
            with _shape_generic_adaptive_pooling():
                torch.onnx.export(net, (example,), str(path), opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
                                  do_constant_folding=True, **kw)
    except Exception as e:  # noqa: BLE001 - the exporter raises many types, all mean "cannot"
        raise CheckpointError(f"this model cannot be exported to ONNX: {type(e).__name__}: "
                              f"{first_line(e)[:300]}") from None


@contextlib.contextmanager
def _shape_generic_adaptive_pooling() -> Iterator[None]:
    """``F.adaptive_avg_pool2d`` (behind ``nn.AdaptiveAvgPool2d`` and ``F.interpolate``'s
    ``area`` mode) computed by matrix products for grids other than 1x1, for the export only."""
    import torch.nn.functional as F

    original = F.adaptive_avg_pool2d

    def pool(x: torch.Tensor, output_size) -> torch.Tensor:
        size = (output_size, output_size) if isinstance(output_size, int) else output_size
        if tuple(size) == (1, 1):
            return original(x, 1)
        return adaptive_avg_pool(x, size)

    F.adaptive_avg_pool2d = pool
    try:
        yield
    finally:
        F.adaptive_avg_pool2d = original


def _bin_matrix(size: int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """``(bins, size)`` averaging weights: row ``i`` is ``1 / len`` over bin ``i``'s span."""
    idx = torch.arange(bins, device=like.device)
    start = torch.div(idx * size, bins, rounding_mode="floor")
    end = torch.div((idx + 1) * size + bins - 1, bins, rounding_mode="floor")
    pos = torch.arange(size, device=like.device)
    inside = (pos >= start[:, None]) & (pos < end[:, None])
    return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)


def adaptive_avg_pool(x: torch.Tensor, bins: int | Sequence[int | None]) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, bins)`` as ``rows @ x @ cols.T``, traced with ``x``'s size
    (``bins``: one side, or ``(rows, cols)`` where None keeps that side)."""
    rows, cols = (bins, bins) if isinstance(bins, int) else tuple(bins)
    if rows is not None:
        x = _bin_matrix(x.shape[-2], rows, x) @ x
    if cols is not None:
        x = x @ _bin_matrix(x.shape[-1], cols, x).transpose(0, 1)
    return x


def _export_params() -> set[str]:
    import inspect

    return set(inspect.signature(torch.onnx.export).parameters)


def _add_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = ONNX_META_PREFIX + key, value
    proto.producer_name = "agriseg"
    proto.producer_version = __version__
    onnx.save(proto, str(path))
