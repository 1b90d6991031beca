"""Acceptance: on the carrot-weed model and real carrot-weed images, the ONNX mask equals the
PyTorch mask on >= 99.9% of valid pixels and the probabilities differ by <= 1e-4.

"The carrot-weed model" is configs/train/carrot-weed.yaml (DeepLabV3+ / MobileNetV3-Large,
decoder 128, 256 px patches) trained, for the suite, on a few real images for a few steps:
real trained weights and batch-norm statistics, not random ones, in seconds instead of the
recipe's hour. The images compared are never trained on. So briefly trained, its logits are
small and many pixels are near ties between two classes, which makes the mask comparison
stricter than with the full model (logit noise of 1e-3 already flips about 1% of the pixels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import SHARED_DATA

from agriseg.constants import NODATA
from agriseg.infer.engines import open_engine
from agriseg.infer.fit import check_fit
from agriseg.infer.pipeline import iter_batches, predict_raster
from agriseg.models.checkpoint import read_card
from agriseg.raster.grid import default_overlap, make_grid
from agriseg.raster.reader import StripReader

pytest.importorskip("onnxruntime")

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "train" / "carrot-weed.yaml"
COMPARED = ("IMG_3450.tif", "IMG_3460.tif", "IMG_3470.tif")  # held out of the short training
TRAIN_IMAGES = 6  # the first images of the rest (the last of them validates)
MIN_AGREEMENT = 0.999
MAX_PROB_DIFF = 1e-4
PATCHES_PER_IMAGE = 16  # of 48, spread over the image, for the probability comparison


@pytest.fixture(scope="module")
def carrot_weed_model(tmp_path_factory) -> Path:
    """The carrot-weed recipe's network trained briefly on real carrot-weed images."""
    from agriseg.training.loop import train

    if not SHARED_DATA.is_dir() or not any(SHARED_DATA.glob("IMG_*_labels.tif")):
        pytest.skip("../shared/data/carrot-weed not present")
    if not all((SHARED_DATA / name).is_file() for name in COMPARED):
        pytest.skip(f"{', '.join(COMPARED)} not all in {SHARED_DATA}")
    rest = sorted(p for p in SHARED_DATA.glob("IMG_????.tif") if p.name not in COMPARED)
    images = [str(p) for p in rest[:TRAIN_IMAGES]]
    r = train(RECIPE, images=images, val_images=[Path(images[-1]).name], epochs=2,
              windows_per_epoch=16, batch_size=8, early_stopping=0, max_minutes=None,
              out_dir=str(tmp_path_factory.mktemp("carrot-weed-run")))
    assert len(r.history) == 2 and r.history[-1]["loss"] < r.history[0]["loss"], r.history
    card = read_card(r.best_checkpoint)
    assert card.arch == {"arch": "deeplabv3plus", "encoder_name": "tu-mobilenetv3_large_100",
                         "decoder_channels": 128}
    assert card.patch_px == 256 and card.classes == ("soil", "crop", "weed")
    return r.best_checkpoint


@pytest.fixture(scope="module")
def engines(carrot_weed_model):
    return {b: open_engine(carrot_weed_model, b, device="cpu") for b in ("torch", "onnx")}


@pytest.mark.parametrize("name", COMPARED)
def test_onnx_mask_equals_torch_mask_on_real_images(carrot_weed_model, tmp_path, name):
    src = SHARED_DATA / name
    out = {}
    for backend in ("torch", "onnx"):
        r = predict_raster(src, tmp_path / f"{backend}.tif", model=carrot_weed_model,
                           backend=backend, device="cpu",
                           confidence=tmp_path / f"{backend}_conf.tif")
        assert r.backend == backend
        with rasterio.open(r.mask_path) as m, rasterio.open(r.confidence_path) as c:
            out[backend] = m.read(1), c.read(1).astype(int)
    (mt, ct), (mo, co) = out["torch"], out["onnx"]
    valid = mt != NODATA
    assert np.array_equal(valid, mo != NODATA)
    n_valid = int(valid.sum())
    assert n_valid > 0.9 * valid.size
    classes = np.unique(mt[valid])
    assert len(classes) >= 2, f"{name}: the model predicts only class {classes}: nothing to compare"
    n_diff = int((mt != mo)[valid].sum())
    agreement = 1 - n_diff / n_valid
    msg = f"{name}: {n_diff} of {n_valid} valid pixels differ (agreement {agreement:.6f})"
    print(msg)
    assert n_diff <= int((1 - MIN_AGREEMENT) * n_valid), msg
    assert agreement >= MIN_AGREEMENT, msg
    assert np.abs(ct - co)[valid].max() <= 1, f"{name}: confidence (percent) differs by > 1"


def real_batches(path: Path, card, divisor: int, n: int, batch_size: int = 8):
    """``n`` normalized patches of ``path`` (spread over the image, in grid order), cut on
    predict_raster's grid with its reader, ``batch_size`` at a time."""
    with rasterio.open(path) as ds:
        grid = make_grid(ds.height, ds.width, card.patch_px, default_overlap(card.patch_px),
                         divisor)
        reader = StripReader(ds, check_fit(ds, card).indexes, grid)
        patches = np.concatenate([b.images for b in iter_batches(reader, grid, card, 16)])
    assert len(patches) == len(grid)
    pick = np.linspace(0, len(patches) - 1, min(n, len(patches))).round().astype(int)
    for i in range(0, len(pick), batch_size):
        yield patches[pick[i:i + batch_size]]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def test_onnx_probabilities_equal_torch_on_real_patches(engines):
    torch_e, onnx_e = engines["torch"], engines["onnx"]
    assert (torch_e.backend, onnx_e.backend) == ("torch", "onnx")
    assert torch_e.input_divisor == onnx_e.input_divisor
    worst = {}
    for name in COMPARED:
        dp = dz = 0.0
        n, classes = 0, set()
        for patches in real_batches(SHARED_DATA / name, torch_e.card, torch_e.input_divisor,
                                    PATCHES_PER_IMAGE):
            assert patches.shape[1:] == (3, 256, 256) and np.isfinite(patches).all()
            lt, lo = torch_e.forward(patches), onnx_e.forward(patches)
            assert lt.shape == lo.shape == (len(patches), 3, 256, 256)
            pt, po = softmax(lt), softmax(lo)
            dp = max(dp, float(np.abs(pt - po).max()))
            dz = max(dz, float(np.abs(lt - lo).max()))
            n += len(patches)
            classes.update(np.unique(pt.argmax(1)).tolist())
        assert len(classes) >= 2, f"{name}: the model predicts only class {classes}"
        worst[name] = (n, dp, dz)
    msg = ", ".join(f"{name} ({n} patches): max |dp| {p:.2e}, max |dlogit| {z:.2e}"
                    for name, (n, p, z) in worst.items())
    print(msg)
    assert max(p for _, p, _ in worst.values()) <= MAX_PROB_DIFF, msg
