"""ONNX export and the ONNX Runtime predictor: same logits as PyTorch, card inside the file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from agriseg.errors import CheckpointError, OutputError
from agriseg.infer.predictor import Predictor
from agriseg.models.checkpoint import load_model
from agriseg.models.registry import input_divisor

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from agriseg.infer.onnx_predictor import (  # noqa: E402
    OnnxPredictor,
    read_onnx_card,
    read_onnx_metadata,
)
from agriseg.models.onnx_export import export_onnx  # noqa: E402


@pytest.fixture(scope="module")
def default_onnx(tmp_path_factory):
    return export_onnx(None, tmp_path_factory.mktemp("onnx") / "default.onnx")


def test_default_model_logits_match_pytorch(default_onnx):
    model = load_model(None)
    onnx = OnnxPredictor(default_onnx)
    torch_pred = Predictor(model.net, device="cpu")
    rng = np.random.default_rng(0)
    for shape in [(1, 3, 256, 256), (3, 3, 512, 512), (2, 3, 256, 384)]:  # dynamic N, H, W
        x = rng.standard_normal(shape).astype(np.float32)
        a, b = onnx(x), torch_pred(x)
        assert a.shape == b.shape == (shape[0], model.card.num_classes, *shape[2:])
        assert np.abs(a - b).max() < 1e-3
        assert (a.argmax(1) == b.argmax(1)).mean() > 0.999
    assert onnx.card == model.card
    assert read_onnx_card(default_onnx).classes == model.card.classes
    assert onnx.input_divisor == input_divisor(model.net) == 16  # DeepLabV3+: stride 16


def test_a_per_pixel_model_exports_too(make_checkpoint, tmp_path):
    ckpt = make_checkpoint(patch_px=64)
    dst = export_onnx(ckpt, tmp_path / "pixel.onnx")
    x = np.random.default_rng(1).standard_normal((2, 3, 37, 53)).astype(np.float32)
    ref = Predictor(load_model(ckpt).net, device="cpu")(x)
    np.testing.assert_allclose(OnnxPredictor(dst)(x), ref, atol=1e-4)


def test_errors_are_one_line(default_onnx, make_checkpoint, tmp_path):
    with pytest.raises(OutputError, match="exists"):
        export_onnx(None, default_onnx)
    with pytest.raises(CheckpointError, match="opset"):
        export_onnx(None, tmp_path / "old.onnx", opset=11)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        OnnxPredictor(bad)
    import onnx

    proto = onnx.load(str(default_onnx))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    with pytest.raises(CheckpointError, match="not one exported by agriseg"):
        OnnxPredictor(foreign)
    with pytest.raises(CheckpointError, match="not one exported by agriseg"):
        read_onnx_card(foreign)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(default_onnx.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable ONNX model: truncated"):
        read_onnx_card(truncated)
    empty = tmp_path / "empty.onnx"
    empty.touch()
    with pytest.raises(CheckpointError, match="not a readable ONNX model: empty file"):
        read_onnx_card(empty)


def test_metadata_is_read_without_a_session(default_onnx):
    import onnx

    expected = {p.key: p.value for p in onnx.load(str(default_onnx)).metadata_props}
    assert read_onnx_metadata(default_onnx) == expected
    assert set(expected) >= {"agriseg.model_card", "agriseg.output", "agriseg.input_divisor"}


def test_the_onnx_predictor_does_not_import_torch(default_onnx):
    code = ("import sys, numpy as np\n"
            "from agriseg.infer.onnx_predictor import OnnxPredictor\n"
            f"p = OnnxPredictor({str(default_onnx)!r})\n"
            "y = p(np.zeros((1, 3, 64, 64), np.float32))\n"
            "assert y.shape == (1, 3, 64, 64), y.shape\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
