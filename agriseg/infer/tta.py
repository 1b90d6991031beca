"""Test-time augmentation: run each batch of patches through the model under several flips or
rotations, undo each on the output, and average the class probabilities.

Crops and weeds seen from above have no up, down, left or right, so the 8 symmetries of the
square (``d4``) or its 4 flips (``flips``) show the model the same field in other poses; the
mean of its answers is steadier than any one. The wrapper sits between the pipeline and the
engine (:func:`with_tta`), one batch at a time, running the transforms one after another on
the same batch and summing into one buffer: memory grows by one batch of probabilities, never
with the raster, and the stitcher downstream is unchanged.

The stitcher blends logits. The wrapper hands it ``log(mean probability)``: softmax of that is
the mean probability again, and the Hann blend of log-probabilities differs from the blend of
the logits only by a per-pixel constant (each patch's log-sum-exp), which neither the argmax
nor the softmax sees. So ``tta="none"`` and an equivariant model under ``flips``/``d4`` give
the same mask and confidence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from agriseg.infer.engines import Engine

# a transform is (quarter turns, mirror first): the patch is mirrored left-right if asked, then
# turned k times by 90 degrees in the (H, W) plane
Transform = tuple[int, bool]
TRANSFORMS: dict[str, tuple[Transform, ...]] = {
    "none": ((0, False),),
    # identity, left-right, up-down (a half turn of the mirror image), both (a half turn)
    "flips": ((0, False), (0, True), (2, True), (2, False)),
    "d4": tuple((k, m) for m in (False, True) for k in range(4)),
}


def apply(x: np.ndarray, t: Transform) -> np.ndarray:
    """``x`` (``(N, C, H, W)``) under transform ``t``, as a contiguous array."""
    k, mirror = t
    if mirror:
        x = x[..., ::-1]
    return np.ascontiguousarray(np.rot90(x, k, axes=(2, 3)))


def undo(y: np.ndarray, t: Transform) -> np.ndarray:
    """The inverse of :func:`apply` (turn back, then mirror), a view where possible."""
    k, mirror = t
    y = np.rot90(y, -k, axes=(2, 3))
    return y[..., ::-1] if mirror else y


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    """Class probabilities of ``logits`` along ``axis`` (float32, overflow-safe)."""
    z = logits.astype(np.float32, copy=True)
    z -= z.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def tta_forward(forward: Callable[[np.ndarray], np.ndarray], mode: str
                ) -> Callable[[np.ndarray], np.ndarray]:
    """A forward pass that averages ``forward``'s probabilities over ``mode``'s transforms and
    returns their log (float32 ``(N, classes, H, W)``), for the logit-blending stitcher."""
    transforms = TRANSFORMS[mode]

    def run(batch: np.ndarray) -> np.ndarray:
        total = None
        for t in transforms:  # one after another: one batch in the model at a time
            probs = softmax(undo(forward(apply(batch, t)), t))
            total = probs if total is None else np.add(total, probs, out=total)
        total /= len(transforms)
        np.maximum(total, np.finfo(np.float32).tiny, out=total)  # log(0) would be -inf
        return np.log(total, out=total)

    return run


def with_tta(engine: Engine, mode: str) -> Engine:
    """``engine`` with test-time augmentation ``mode``; ``none`` returns it unchanged.

    The augmented engine runs synchronously: on CUDA each transform's logits must come back
    before the next transform's batch can reuse the pinned buffers, and the 4 or 8 forward
    passes keep the device busy anyway. Batch sizing (``auto``) is the engine's own, since
    only one transformed batch is in the model at a time.
    """
    if mode == "none":
        return engine
    if mode not in TRANSFORMS:
        raise ValueError(f"unknown test-time augmentation {mode!r}")
    return dataclasses.replace(engine, forward=tta_forward(engine.forward, mode), submit=None,
                               asynchronous=False)
