"""PointRend keeps the shared contract; its point head learns from the point loss only."""

from __future__ import annotations

import pytest
import torch
from arch_contract import ArchContract

from agriseg.models import registry


class TestPointRend(ArchContract):
    arch = "pointrend"
    options = {"coarse_channels": 32, "point_hidden": 32, "num_points": 256,
               "subdivision_points": 64}


@pytest.mark.parametrize("output_stride, steps", [(16, 2), (8, 1)])
def test_subdivision_runs_from_the_coarse_stride_to_stride_4(output_stride, steps):
    model = registry.create_model("pointrend", "resnet18", classes=3,
                                  output_stride=output_stride, **TestPointRend.options).eval()
    assert model.subdivision_steps == steps
    seen = []
    model.point_head.register_forward_hook(lambda _m, _a, out: seen.append(out.shape))
    with torch.no_grad():
        model(torch.randn(1, 3, 96, 160))
    assert len(seen) == steps


def test_onnx_keeps_topk_k_dynamic_for_inputs_smaller_than_the_example(tmp_path):
    """Exported from a 64-pixel example (k = 64 there); a 32x48 input has fewer pixels than k
    after the first step, which a frozen k would make ``TopK`` reject."""
    pytest.importorskip("onnxruntime")
    import numpy as np

    from agriseg.infer.onnx_predictor import OnnxPredictor
    from agriseg.models.checkpoint import save_checkpoint
    from agriseg.models.onnx_export import export_onnx

    contract = TestPointRend()
    model = contract.build().eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, contract.card())
    predictor = OnnxPredictor(export_onnx(path, tmp_path / "m.onnx"))
    for size in ((32, 48), (16, 16)):
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ref = model(x).numpy()
        np.testing.assert_allclose(predictor(x.numpy()), ref, atol=1e-3)
