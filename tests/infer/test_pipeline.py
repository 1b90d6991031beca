"""End-to-end raster -> mask: seams, georeferencing, no-data, dtypes, COG layout."""

import numpy as np
import pytest
import rasterio
import torch

from agriseg.infer.pipeline import predict_raster
from agriseg.models.checkpoint import load_checkpoint


def whole_image_mask(ckpt, data, valid=None):
    """Reference: one forward pass over the whole image, no tiling."""
    model, card = load_checkpoint(ckpt)
    if valid is None:
        valid = np.ones(data.shape[1:], dtype=bool)
    x = torch.from_numpy(card.normalization.apply(data, valid))[None]
    with torch.inference_mode():
        logits = model(x)[0]
    mask = logits.argmax(0).numpy().astype(np.uint8)
    mask[~valid] = 255
    return mask, torch.softmax(logits, 0).max(0).values.numpy()


@pytest.mark.parametrize("blend", ["hann", "crop"])
@pytest.mark.parametrize("size,patch,overlap", [((200, 300), 64, 16), ((97, 131), 32, 31),
                                                ((50, 40), 64, 8), ((256, 256), 64, 0)])
def test_per_pixel_model_tiled_equals_whole_image(make_raster, make_checkpoint, tmp_path,
                                                  size, patch, overlap, blend):
    h, w = size
    src = make_raster(width=w, height=h, seed=h + w)
    ckpt = make_checkpoint(seed=3)
    with rasterio.open(src) as ds:
        data = ds.read()
    expected, _ = whole_image_mask(ckpt, data)
    out = tmp_path / "mask.tif"
    res = predict_raster(src, out, model=ckpt, patch_px=patch, overlap_px=overlap, batch_size=5,
                         device="cpu", blend=blend)
    with rasterio.open(out) as ds:
        got = ds.read(1)
    assert len(np.unique(expected)) >= 2, "test needs a model that predicts several classes"
    np.testing.assert_array_equal(got, expected)
    assert sum(res.class_pixels.values()) == h * w


def test_real_smp_model_is_seam_free(make_raster, make_checkpoint, tmp_path):
    """With spatial context the tiles cannot match exactly, but >= 99% of pixels must."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:256, 0:320]
    base = (np.sin(xx / 9.0) + np.cos(yy / 13.0)) * 60 + 128
    data = np.stack([base, base[::-1], base[:, ::-1]]) + rng.normal(0, 8, (3, 256, 320))
    src = make_raster(data=np.clip(data, 0, 255).astype("uint8"))
    ckpt = make_checkpoint(arch="unet", encoder_name="resnet18", seed=0, encoder_depth=3,
                           decoder_channels=(32, 16, 8))
    with rasterio.open(src) as ds:
        expected, _ = whole_image_mask(ckpt, ds.read())
    out = tmp_path / "mask.tif"
    predict_raster(src, out, model=ckpt, patch_px=128, overlap_px=64, device="cpu")
    with rasterio.open(out) as ds:
        got = ds.read(1)
    assert len(np.unique(expected)) >= 2
    agree = (got == expected).mean()
    assert agree >= 0.99, f"only {agree:.4f} of pixels agree with the whole-image pass"


def test_georeferencing_and_nodata_are_kept(make_raster, make_checkpoint, tmp_path):
    rng = np.random.default_rng(5)
    data = rng.integers(1, 255, (3, 150, 170)).astype("uint8")
    data[:, 10:40, 20:90] = 0  # nodata block
    data[0, 100:110, 100:110] = 0  # one band zero only: still valid (GDAL convention)
    src = make_raster(data=data, nodata=0, pixel_size=0.05)
    ckpt = make_checkpoint()
    out, conf = tmp_path / "m.tif", tmp_path / "c.tif"
    res = predict_raster(src, out, model=ckpt, confidence=conf, patch_px=64, overlap_px=16,
                         resample="off")
    with rasterio.open(src) as s, rasterio.open(out) as m, rasterio.open(conf) as c:
        for ds in (m, c):
            assert ds.crs == s.crs and ds.transform == s.transform
            assert (ds.width, ds.height) == (s.width, s.height)
            assert ds.dtypes[0] == "uint8" and ds.nodata == 255
        mask, cf = m.read(1), c.read(1)
    nodata = (data == 0).all(axis=0)
    assert (mask[nodata] == 255).all() and (mask[~nodata] < 3).all()
    assert (cf[nodata] == 255).all()
    assert cf[~nodata].min() >= 33 and cf[~nodata].max() <= 100  # 3 classes: p_max >= 1/3
    assert res.nodata_pixels == nodata.sum()
    expected, prob = whole_image_mask(ckpt, data, ~nodata)
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_allclose(cf[~nodata], np.rint(prob[~nodata] * 100), atol=1)


@pytest.mark.parametrize("dtype,nodata", [("uint16", 0), ("float32", -9999.0),
                                          ("int16", -32768)])
def test_other_dtypes_with_nodata(make_raster, make_checkpoint, tmp_path, dtype, nodata):
    rng = np.random.default_rng(7)
    if dtype == "float32":
        data = rng.random((4, 90, 120), dtype=np.float32)
    else:
        data = rng.integers(1, 3000, (4, 90, 120)).astype(dtype)
    data[:, 60:, 100:] = nodata
    if dtype == "float32":
        data[:, :5, :5] = np.nan  # NaN is no-data too
    names = ("red", "green", "blue", "nir")
    src = make_raster(data=data, nodata=nodata, descriptions=names)
    ckpt = make_checkpoint(bands=names, dtype=dtype, seed=11)
    out = tmp_path / "mask.tif"
    predict_raster(src, out, model=ckpt, patch_px=32, overlap_px=8)
    with rasterio.open(out) as ds:
        mask = ds.read(1)
    invalid = (data == nodata).all(axis=0) | np.isnan(data).all(axis=0)
    expected, _ = whole_image_mask(ckpt, np.where(np.isnan(data), 0, data), ~invalid)
    np.testing.assert_array_equal(mask, expected)
    assert (mask[invalid] == 255).all()


def test_alpha_band_masks_pixels(make_raster, make_checkpoint, tmp_path):
    rng = np.random.default_rng(2)
    data = rng.integers(1, 255, (4, 80, 80)).astype("uint8")
    data[3] = 255
    data[3, :, :30] = 0
    src = make_raster(data=data, alpha=True)
    ckpt = make_checkpoint()
    out = tmp_path / "mask.tif"
    predict_raster(src, out, model=ckpt, patch_px=32, overlap_px=8)
    with rasterio.open(out) as ds:
        mask = ds.read(1)
    assert (mask[:, :30] == 255).all() and (mask[:, 30:] != 255).all()


def test_output_is_a_valid_cog_with_colormap_and_class_names(make_raster, make_checkpoint,
                                                            tmp_path):
    src = make_raster(width=1100, height=900)
    ckpt = make_checkpoint()
    out = tmp_path / "mask.tif"
    predict_raster(src, out, model=ckpt, patch_px=256, overlap_px=32)
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.profile["tiled"] and ds.block_shapes[0] == (512, 512)
        assert ds.overviews(1) == [2, 4]  # down to one 512 px block
        cmap = ds.colormap(1)
        assert cmap[1][:3] == (34, 139, 34) and cmap[255][3] == 0
        assert ds.tags()["CLASS_2"] == "weed"
        full = ds.read(1)
        ovr = ds.read(1, out_shape=(450, 550))
    # overviews hold class ids only (mode/nearest never invents a value)
    assert set(np.unique(ovr)) <= set(np.unique(full))
    assert not list(tmp_path.glob(".*part*")), "temporary files left behind"


def test_rows_are_read_once(make_raster, make_checkpoint):
    from agriseg.raster.grid import make_grid
    from agriseg.raster.io import open_raster
    from agriseg.raster.reader import StripReader

    src = make_raster(width=100, height=1000)
    with open_raster(src) as ds:
        grid = make_grid(ds.height, ds.width, 64, 48)
        reader = StripReader(ds, [1, 2, 3], grid)
        full = ds.read()
        for row in reader:
            np.testing.assert_array_equal(row.data, full[:, row.y0:row.y0 + 64])
        assert reader.rows_read == 1000


@pytest.mark.parametrize("h,w", [(45, 70), (33, 200), (1, 1)])
def test_raster_smaller_than_a_patch_with_stride_32_model(make_raster, make_checkpoint,
                                                           tmp_path, h, w):
    src = make_raster(width=w, height=h)
    ckpt = make_checkpoint(arch="fpn", encoder_name="resnet18", patch_px=128)
    out = tmp_path / "mask.tif"
    res = predict_raster(src, out, model=ckpt, overlap_px=16)
    with rasterio.open(out) as ds:
        mask = ds.read(1)
    assert mask.shape == (h, w) and (mask < 3).all()
    assert res.patches == (1 if w <= 128 else 2)


def test_real_field_photo_tiles_agree_with_whole_image(carrot_weed, make_checkpoint, tmp_path):
    """Real Carrot-Weed imagery: georeferencing kept, tiles agree with one whole-image pass."""
    src = carrot_weed / "IMG_3438.tif"
    ckpt = make_checkpoint(arch="unet", encoder_name="resnet18", seed=0, encoder_depth=3,
                           decoder_channels=(32, 16, 8), patch_px=256)
    with rasterio.open(src) as ds:
        data = ds.read(window=rasterio.windows.Window(0, 0, 640, 512))
        crs, transform = ds.crs, ds.transform
    sub = tmp_path / "sub.tif"
    with rasterio.open(sub, "w", driver="GTiff", width=640, height=512, count=3, dtype="uint8",
                       crs=crs, transform=transform) as dst:
        dst.write(data)
    expected, _ = whole_image_mask(ckpt, data)
    out = tmp_path / "mask.tif"
    predict_raster(sub, out, model=ckpt, overlap_px=64, resample="off")
    with rasterio.open(out) as ds:
        got = ds.read(1)
        assert ds.crs == crs and ds.transform == transform
    assert len(np.unique(expected)) >= 2
    assert (got == expected).mean() >= 0.99


def test_internal_mask_is_no_data(make_raster, make_checkpoint, tmp_path):
    src = make_raster(width=96, height=64)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(src, "r+") as ds:
        m = np.full((64, 96), 255, dtype=np.uint8)
        m[:20, :50] = 0
        ds.write_mask(m)
    out = tmp_path / "mask.tif"
    predict_raster(src, out, model=make_checkpoint(), patch_px=32, overlap_px=8)
    with rasterio.open(out) as ds:
        mask = ds.read(1)
    assert (mask[:20, :50] == 255).all()
    assert (mask[20:] != 255).all() and (mask[:, 50:] != 255).all()
    assert not list(tmp_path.glob("*.msk")), "mask must be internal for this test"
