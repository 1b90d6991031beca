"""The contract every registered architecture keeps, as a base class; each architecture's test
file subclasses it with its name and options (see test_arch_*.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agriseg.models.card import ModelCard, Normalization
from agriseg.models.checkpoint import load_model, save_checkpoint
from agriseg.models.registry import ARCHITECTURES, create_model, input_divisor


class ArchContract:
    arch: str = ""
    encoder: str = "resnet18"
    options: dict = {}
    size: tuple[int, int] = (96, 160)  # multiples of the stride, not powers of two
    onnx_exportable: bool = True
    trains_at_batch_1: bool = True  # False: the registry says min_train_batch 2, and it is so
    unused_parameters: tuple[str, ...] = ()  # prefixes that are built but never used (smp's)

    def build(self, seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        return create_model(self.arch, self.encoder, in_channels=3, classes=3, **self.options)

    def card(self) -> ModelCard:
        return ModelCard(arch={"arch": self.arch, "encoder_name": self.encoder, **self.options},
                         bands=("red", "green", "blue"), classes=("soil", "crop", "weed"),
                         normalization=Normalization.from_scale(255.0, 3), patch_px=64,
                         pixel_size_m=0.01)

    def labels(self, n: int = 2) -> torch.Tensor:
        """Random classes, a crop square (edges for boundary losses), an unlabelled strip."""
        labels = torch.randint(0, 3, (n, *self.size), generator=torch.Generator().manual_seed(2))
        labels[:, 20:60, 30:90] = 1
        labels[:, :8] = 255
        return labels

    def x(self, n: int = 2) -> torch.Tensor:
        return torch.randn(n, 3, *self.size, generator=torch.Generator().manual_seed(1))

    @pytest.mark.parametrize("batch", [1, 2])
    def test_finite_outputs_and_gradients_in_train_and_eval(self, batch):
        model = self.build()
        assert all(s % input_divisor(model) == 0 for s in self.size)
        assert ARCHITECTURES[self.arch].min_train_batch == (1 if self.trains_at_batch_1 else 2)
        model.train()
        if batch == 1 and not self.trains_at_batch_1:  # the declaration is true...
            with pytest.raises(ValueError, match="more than 1 value per channel"):
                model(self.x(batch))
            model.eval()  # ...and it predicts one patch at a time
            with torch.no_grad():
                assert torch.isfinite(model(self.x(batch))).all()
            return
        out = model(self.x(batch))
        assert out.shape == (batch, 3, *self.size) and torch.isfinite(out).all()
        loss = out.square().mean()
        if hasattr(model, "auxiliary_loss"):  # training-only heads learn only through it
            aux = model.auxiliary_loss(self.labels(batch))
            assert torch.isfinite(aux)
            loss = loss + aux
        loss.backward()
        missing = [n for n, p in model.named_parameters()
                   if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
        unused = [n for n in missing if n.startswith(self.unused_parameters)] \
            if self.unused_parameters else []
        assert bool(unused) == bool(self.unused_parameters), "unused_parameters is out of date"
        missing = [n for n in missing if n not in unused]
        assert not missing, f"parameters without a finite gradient: {missing[:5]}"
        model.eval()
        with torch.no_grad():
            assert torch.isfinite(model(self.x(batch))).all()

    def test_checkpoint_round_trip(self, tmp_path):
        model = self.build().eval()
        path = save_checkpoint(tmp_path / "m.safetensors", model, self.card())
        loaded = load_model(path).net.eval()
        with torch.no_grad():
            torch.testing.assert_close(loaded(self.x()), model(self.x()), rtol=0, atol=0)

    def test_autocast_bf16_and_channels_last(self):
        model = self.build().eval()
        with torch.no_grad():
            ref = model(self.x())
            cl = model.to(memory_format=torch.channels_last)(
                self.x().contiguous(memory_format=torch.channels_last))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = model(self.x())
        torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-4)
        assert torch.isfinite(low.float()).all()
        assert (low.float().argmax(1) == ref.argmax(1)).float().mean() > 0.8

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
    def test_cuda_fp16_autocast_and_channels_last(self):
        model = self.build().eval().cuda().to(memory_format=torch.channels_last)
        x = self.x().cuda().contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            ref = model(x)
            with torch.autocast("cuda", dtype=torch.float16):
                low = model(x)
        assert torch.isfinite(low.float()).all()
        assert (low.float().argmax(1) == ref.argmax(1)).float().mean() > 0.8

    def test_onnx_export(self, tmp_path):
        if not self.onnx_exportable:
            pytest.skip(f"{self.arch} does not export to ONNX (see its module)")
        pytest.importorskip("onnxruntime")
        from agriseg.infer.onnx_predictor import OnnxPredictor
        from agriseg.models.onnx_export import export_onnx

        model = self.build().eval()
        path = save_checkpoint(tmp_path / "m.safetensors", model, self.card())
        onnx_path = export_onnx(path, tmp_path / "m.onnx")
        x = self.x().numpy()
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(OnnxPredictor(onnx_path)(x), ref, atol=1e-3)

    def test_predict_on_a_sample_tile(self, tmp_path):
        from agriseg.infer.pipeline import predict_raster

        path = save_checkpoint(tmp_path / "m.safetensors", self.build(), self.card())
        res = predict_raster("sample_tiles/field_small.tif", tmp_path / "mask.tif", model=path,
                             backend="torch", device="cpu")
        assert res.width == 300 and res.height == 250
        assert sum(res.class_pixels.values()) == 300 * 250  # every pixel once (no nodata)
