"""predict_array: in-memory pixels give exactly what predict writes for the same raster."""

import numpy as np
import pytest
import rasterio

from agriseg.errors import ModelMismatchError
from agriseg.infer.array import predict_array
from agriseg.infer.pipeline import predict_raster
from agriseg.models.checkpoint import load_model


@pytest.mark.parametrize("arch,kw", [("pixel", {}),
                                     ("unet", {"encoder_depth": 3,
                                               "decoder_channels": [16, 8, 8]})])
def test_array_equals_raster(make_raster, make_checkpoint, tmp_path, arch, kw):
    data = np.random.default_rng(1).integers(1, 256, (3, 150, 170)).astype(np.uint8)
    data[:, :12, :30] = 0
    src = make_raster(data=data, nodata=0)
    model = load_model(make_checkpoint(arch=arch, patch_px=64, **kw))
    predict_raster(src, tmp_path / "m.tif", model=model, confidence=tmp_path / "c.tif",
                   overlap_px=16, device="cpu")
    got = predict_array(data, model, nodata=0, overlap_px=16, device="cpu")
    with rasterio.open(tmp_path / "m.tif") as m, rasterio.open(tmp_path / "c.tif") as c:
        np.testing.assert_array_equal(got.classes, m.read(1))
        np.testing.assert_array_equal(got.confidence, c.read(1))
    assert (got.classes[:12, :30] == 255).all()
    assert sum(got.class_pixels.values()) == 150 * 170 - 12 * 30


def test_bands_valid_mask_and_bad_arrays(make_checkpoint):
    model = load_model(make_checkpoint())
    data = np.random.default_rng(2).integers(0, 256, (4, 40, 50)).astype(np.uint8)
    picked = predict_array(data, model, bands=[3, 2, 1], confidence=False)
    direct = predict_array(data[[2, 1, 0]], model, confidence=False)
    np.testing.assert_array_equal(picked.classes, direct.classes)
    assert picked.confidence is None
    valid = np.ones((40, 50), bool)
    valid[5:9, 7:11] = False
    masked = predict_array(data[:3], model, valid=valid)
    assert (masked.classes[~valid] == 255).all() and (masked.classes[valid] != 255).all()
    with pytest.raises(ModelMismatchError, match="4 bands but the model takes 3"):
        predict_array(data, model)
    with pytest.raises(ModelMismatchError, match="float32 does not fit.*uint8"):
        predict_array(data[:3].astype(np.float32), model)
    with pytest.raises(ModelMismatchError, match="band 7 does not exist"):
        predict_array(data, model, bands=[7, 1, 2])
