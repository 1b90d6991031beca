"""Test-time augmentation: flips/d4 average the class probabilities of transformed patches."""

import numpy as np
import pytest
import torch
from torch import nn

from agriseg.errors import ConfigError
from agriseg.infer.array import predict_array
from agriseg.infer.engines import Engine
from agriseg.infer.predictor import Predictor
from agriseg.infer.tta import TRANSFORMS, apply, tta_forward, undo, with_tta
from agriseg.models.checkpoint import Model, load_model
from agriseg.options import PredictOptions


def asymmetric_model(in_ch: int = 3, classes: int = 3) -> nn.Module:
    """A 3x3 convolution with random (so direction-dependent) weights: not flip-equivariant."""
    torch.manual_seed(3)
    net = nn.Conv2d(in_ch, classes, 3, padding=1)
    with torch.no_grad():
        net.weight.normal_(0.0, 1.0)
    return net.eval()


def direct_mean_probs(net: nn.Module, x: np.ndarray, mode: str) -> np.ndarray:
    """Mean softmax over ``mode``'s transforms, each undone, computed in torch alone."""
    t = torch.from_numpy(x)
    ops = {"flips": [(0, False), (0, True), (2, True), (2, False)],
           "d4": [(k, m) for m in (False, True) for k in range(4)]}[mode]
    total = 0
    with torch.no_grad():
        for k, mirror in ops:
            xt = torch.rot90(torch.flip(t, [3]) if mirror else t, k, [2, 3])
            y = torch.rot90(net(xt), -k, [2, 3])
            y = torch.flip(y, [3]) if mirror else y
            total = total + torch.softmax(y.double(), dim=1)
    return (total / len(ops)).numpy()


@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_transforms_are_distinct_and_undone(mode):
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    seen = {apply(x, t).tobytes() for t in TRANSFORMS[mode]}
    assert len(seen) == {"flips": 4, "d4": 8}[mode]
    for t in TRANSFORMS[mode]:
        np.testing.assert_array_equal(undo(apply(x, t), t), x)
    # the flips are the identity, left-right, up-down and both
    flips = {apply(x, t).tobytes() for t in TRANSFORMS["flips"]}
    assert flips == {x.tobytes(), x[..., ::-1].copy().tobytes(),
                     x[..., ::-1, :].copy().tobytes(), x[..., ::-1, ::-1].copy().tobytes()}


@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_averaged_probabilities_match_direct_computation(mode):
    net = asymmetric_model()
    x = np.random.default_rng(0).normal(size=(2, 3, 16, 24)).astype(np.float32)  # not square
    out = tta_forward(Predictor(net, device="cpu", channels_last=False), mode)(x)
    expected = direct_mean_probs(net, x, mode)
    np.testing.assert_allclose(np.exp(out), expected, atol=2e-6)
    with torch.no_grad():
        plain = torch.softmax(net(torch.from_numpy(x)), 1).numpy()
    assert np.abs(plain - expected).max() > 0.05  # the model is not equivariant: TTA matters


def test_small_raster_through_the_pipeline_matches_direct_computation(make_checkpoint):
    """One patch covering a 32x32 array: mask and confidence are argmax/max of the mean."""
    card = load_model(make_checkpoint()).card
    net = asymmetric_model()
    model = Model(net, card)
    data = np.random.default_rng(5).integers(1, 256, (3, 32, 32)).astype(np.uint8)
    got = predict_array(data, model, patch_px=32, overlap_px=0, device="cpu", tta="d4")
    x = card.normalization.apply(data, np.ones((32, 32), bool))[None]
    probs = direct_mean_probs(net, x, "d4")[0]
    np.testing.assert_array_equal(got.classes, probs.argmax(0))
    conf = np.rint(probs.max(0) * 100)
    assert np.abs(got.confidence - conf).max() <= 1  # percent rounding of float32 vs float64
    assert (got.confidence == conf).mean() > 0.99
    plain = predict_array(data, model, patch_px=32, overlap_px=0, device="cpu")
    assert (plain.classes != got.classes).any()


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_equivariant_model_gives_the_plain_result(make_checkpoint, backend):
    """A per-pixel (1x1) model commutes with flips and turns: TTA changes nothing, on either
    backend, across overlapping, blended patches and no-data."""
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    path = make_checkpoint(patch_px=64)
    data = np.random.default_rng(1).integers(1, 256, (3, 150, 170)).astype(np.uint8)
    data[:, :12, :30] = 0
    kw = dict(nodata=0, overlap_px=16, device="cpu", backend=backend)
    plain = predict_array(data, path, **kw)
    for mode in ("flips", "d4"):
        got = predict_array(data, path, tta=mode, **kw)
        np.testing.assert_array_equal(got.classes, plain.classes)
        np.testing.assert_array_equal(got.confidence, plain.confidence)
    assert len(np.unique(plain.classes)) == 4  # three classes and no-data: not a trivial map


def test_none_is_the_engine_itself_and_bad_values_fail():
    engine = Engine(card=None, input_divisor=1, backend="torch", device="cpu",
                    forward=lambda b: b)
    assert with_tta(engine, "none") is engine
    assert not with_tta(engine, "d4").asynchronous
    with pytest.raises(ConfigError, match="'rot'.*none, flips, d4"):
        PredictOptions(tta="rot")
    assert PredictOptions(tta="d4").summary(64, 8)["tta"] == "d4"
