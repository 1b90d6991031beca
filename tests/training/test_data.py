"""Training data: pairing, split, checks, band statistics and the window datasets."""

import pickle

import geopandas as gpd
import numpy as np
import pytest
from conftest import CRS, ORIGIN, write_raster
from rasterio.features import rasterize
from rasterio.transform import from_origin
from shapely import box

from agriseg.errors import ConfigError, ModelMismatchError, RasterError, VectorError
from agriseg.models.card import Normalization
from agriseg.training.data import (
    FixedWindows,
    Sample,
    WindowDataset,
    band_statistics,
    pair_samples,
    split_samples,
    validate_samples,
)

NORM = Normalization(mean=(100.0, 100.0, 100.0), std=(50.0, 50.0, 50.0))
X0, Y0 = ORIGIN


def px_box(c0, r0, c1, r1):
    """Polygon covering pixel columns c0..c1-1 and rows r0..r1-1 of a 1 cm image at ORIGIN."""
    return box(X0 + c0 * 0.01 + 0.003, Y0 - r1 * 0.01 + 0.003,
               X0 + c1 * 0.01 - 0.003, Y0 - r0 * 0.01 - 0.003)


POLYS = [(px_box(10, 20, 30, 40), 1), (px_box(50, 5, 65, 70), 2), (px_box(20, 60, 75, 75), 1)]


def write_gpkg(path, items=POLYS, crs="EPSG:4326", field="class_id"):
    """Polygons drawn in the image CRS, saved in ``crs`` (so they must be reprojected back)."""
    gdf = gpd.GeoDataFrame({field: [c for _, c in items], "name": ["x"] * len(items)},
                           geometry=[g for g, _ in items], crs=CRS)
    gdf.to_crs(crs).to_file(path, driver="GPKG")
    return path


def burn(items, shape, fill=255):
    """The label raster the polygons stand for, on the image grid."""
    return rasterize(items, out_shape=shape, transform=from_origin(X0, Y0, 0.01, 0.01),
                     fill=fill, dtype="uint8")


def pairs(ds):
    return [tuple(t.numpy() for t in ds[i]) for i in range(len(ds))]


# -- pairing and split -------------------------------------------------------------------------

def test_pair_by_stem_and_missing_label(make_raster, tmp_path):
    make_raster("a.tif", width=20, height=20)
    make_raster("b.tif", width=20, height=20)
    make_raster("a_labels.tif", width=20, height=20, count=1)
    write_gpkg(tmp_path / "b.gpkg")
    got = pair_samples(tmp_path, None, label_field="class_id")
    assert [(s.image.name, s.labels.name, s.label_field) for s in got] == \
        [("a.tif", "a_labels.tif", "class_id"), ("b.tif", "b.gpkg", "class_id")]
    lab_dir = tmp_path / "labels"
    lab_dir.mkdir()
    write_raster(lab_dir / "a.tif", np.zeros((1, 20, 20), np.uint8))
    write_raster(lab_dir / "b_labels.tif", np.zeros((1, 20, 20), np.uint8))
    got = pair_samples(str(tmp_path / "*.tif"), lab_dir)
    assert [(s.image.name, s.labels) for s in got] == \
        [("a.tif", lab_dir / "a.tif"), ("b.tif", lab_dir / "b_labels.tif")]
    one = pair_samples([tmp_path / "a.tif", tmp_path / "b.tif"], tmp_path / "b.gpkg")
    assert {s.labels.name for s in one} == {"b.gpkg"} and len(one) == 2
    make_raster("c.tif", width=20, height=20)
    with pytest.raises(ConfigError, match=r"c\.tif: no labels"):
        pair_samples(tmp_path, lab_dir)


def test_split_is_reproducible_disjoint_and_respects_val_images(tmp_path):
    samples = [Sample(tmp_path / f"img{i}.tif", tmp_path / f"img{i}.gpkg") for i in range(10)]
    train, val = split_samples(samples, val_fraction=0.3, seed=7)
    assert len(val) == 3 and len(train) == 7 and not set(train) & set(val)
    assert set(train) | set(val) == set(samples)
    assert split_samples(samples[::-1], val_fraction=0.3, seed=7) == (train, val)
    others = {tuple(s.image.name for s in split_samples(samples, val_fraction=0.3, seed=k)[1])
              for k in range(8)}
    assert len(others) > 1  # the seed matters
    train, val = split_samples(samples, val_images=["img2.tif", "img5"])
    assert [s.image.name for s in val] == ["img2.tif", "img5.tif"] and len(train) == 8
    with pytest.raises(ConfigError, match="img99"):
        split_samples(samples, val_images=["img99"])


# -- labels ------------------------------------------------------------------------------------

def test_vector_and_raster_labels_give_the_same_targets(make_raster, tmp_path):
    img = make_raster("img.tif", width=90, height=80)
    gpkg = write_gpkg(tmp_path / "labels.gpkg")
    lab = write_raster(tmp_path / "img_labels.tif", burn(POLYS, (80, 90))[None])
    kw = dict(patch_px=32, normalization=NORM, num_classes=3)
    vec = WindowDataset([Sample(img, gpkg)], length=12, seed=3, **kw)
    ras = WindowDataset([Sample(img, lab)], length=12, seed=3, **kw)
    got_v, got_r = pairs(vec), pairs(ras)
    for (iv, lv), (ir, lr) in zip(got_v, got_r, strict=True):
        np.testing.assert_array_equal(iv, ir)
        np.testing.assert_array_equal(lv, lr)
    assert any((lv == 2).any() for _, lv in got_v) and any((lv == 255).any() for _, lv in got_v)
    fixed_v = pairs(FixedWindows([Sample(img, gpkg)], **kw))
    fixed_r = pairs(FixedWindows([Sample(img, lab)], **kw))
    assert len(fixed_v) == 9
    for (_, lv), (_, lr) in zip(fixed_v, fixed_r, strict=True):
        np.testing.assert_array_equal(lv, lr)


def test_polygon_labels_may_name_their_classes(make_raster, tmp_path):
    """A label field of names (any case) trains exactly like one of ids; checks catch typos."""
    img = make_raster("img.tif", width=90, height=80)
    ids = write_gpkg(tmp_path / "ids.gpkg")
    named = [(g, ["", "Crop", "WEED"][c]) for g, c in POLYS]
    names = write_gpkg(tmp_path / "names.gpkg", named, field="kind")
    kw = dict(patch_px=32, normalization=NORM, num_classes=3)
    by_id = pairs(FixedWindows([Sample(img, ids)], **kw))
    by_name = pairs(FixedWindows([Sample(img, names, label_field="kind")],
                                 classes=["soil", "crop", "weed"], **kw))
    for (_, a), (_, b) in zip(by_id, by_name, strict=True):
        np.testing.assert_array_equal(a, b)
    check = dict(bands=["band1", "band2", "band3"], num_classes=3)
    validate_samples([Sample(img, names, label_field="kind")],
                     classes=["soil", "crop", "weed"], **check)
    with pytest.raises(VectorError, match="'WEED' is not a class; valid names: soil, crop, wed"):
        validate_samples([Sample(img, names, label_field="kind")],
                         classes=["soil", "crop", "wed"], **check)


def test_uncovered_polygon_pixels_are_ignored_unless_inside_the_aoi(make_raster, tmp_path):
    img = make_raster("img.tif", width=80, height=80)
    gpkg = write_gpkg(tmp_path / "labels.gpkg")
    aoi = write_gpkg(tmp_path / "aoi.gpkg", [(px_box(0, 0, 40, 50), 0)], crs="EPSG:3857")
    kw = dict(patch_px=80, normalization=NORM, num_classes=3)
    (_, plain), = pairs(FixedWindows([Sample(img, gpkg)], **kw))
    np.testing.assert_array_equal(plain, burn(POLYS, (80, 80), fill=255))
    (_, with_aoi), = pairs(FixedWindows([Sample(img, gpkg, aoi=aoi)], **kw))
    expected = burn(POLYS, (80, 80), fill=255)
    inside = np.zeros((80, 80), bool)
    inside[:50, :40] = True
    expected[inside & (expected == 255)] = 0
    np.testing.assert_array_equal(with_aoi, expected)
    assert (with_aoi[:50, :10] == 0).all() and (with_aoi[:50, 70:] == 255).all()


def test_image_nodata_gets_label_255_and_image_0(make_raster, tmp_path):
    data = np.full((3, 40, 40), 150, dtype=np.uint8)
    data[:, :10] = 0
    img = make_raster("img.tif", data=data, nodata=0)
    lab = write_raster(tmp_path / "lab.tif", np.ones((1, 40, 40), np.uint8))
    (image, labels), = pairs(FixedWindows([Sample(img, lab)], patch_px=40, normalization=NORM,
                                          num_classes=2))
    assert (labels[:10] == 255).all() and (labels[10:] == 1).all()
    assert (image[:, :10] == 0).all() and np.allclose(image[:, 10:], 1.0)


def test_images_smaller_than_the_patch_are_padded_with_ignore(make_raster, tmp_path):
    img = make_raster("img.tif", width=20, height=12)
    lab = write_raster(tmp_path / "lab.tif", np.ones((1, 12, 20), np.uint8))
    ds = WindowDataset([Sample(img, lab)], patch_px=32, normalization=NORM, length=2,
                       num_classes=2)
    image, labels = ds[0]
    assert image.shape == (3, 32, 32) and labels.shape == (32, 32)
    assert (labels[:12, :20] == 1).all() and (labels[12:] == 255).all()
    assert (labels[:, 20:] == 255).all() and (image[:, 12:] == 0).all()


# -- band statistics ---------------------------------------------------------------------------

def test_band_statistics_match_numpy_over_valid_pixels(make_raster, tmp_path):
    rng = np.random.default_rng(1)
    a = rng.integers(1, 5000, (3, 50, 60)).astype(np.uint16)
    a[:, :, :7] = 0  # no-data
    a[1, 30:, 30:] = 0  # zero in one band only: still a valid pixel
    b = (rng.integers(1, 9000, (3, 30, 40)) + 100).astype(np.uint16)
    ia = make_raster("a.tif", data=a, nodata=0)
    ib = make_raster("b.tif", data=b, nodata=0)
    samples = [Sample(ia, ia), Sample(ib, ib)]
    got = band_statistics(samples, max_pixels=10**6)
    valid = np.concatenate([a[:, :, 7:].reshape(3, -1), b.reshape(3, -1)], axis=1).astype(float)
    np.testing.assert_allclose(got.mean, valid.mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(got.std, valid.std(axis=1), rtol=1e-9)
    sub = band_statistics(samples, max_pixels=1000, seed=5, window_px=16)
    assert sub == band_statistics(samples, max_pixels=1000, seed=5, window_px=16)
    assert sub != got
    np.testing.assert_allclose(sub.mean, got.mean, rtol=0.1)
    np.testing.assert_allclose(sub.std, got.std, rtol=0.15)


# -- checks before training --------------------------------------------------------------------

def test_validate_samples_passes_good_inputs_and_names_each_problem(make_raster, tmp_path):
    img = make_raster("img.tif", width=80, height=80, descriptions=["red", "green", "blue"])
    gpkg = write_gpkg(tmp_path / "labels.gpkg")
    lab = write_raster(tmp_path / "lab.tif", burn(POLYS, (80, 80))[None])
    check = dict(bands=["red", "green", "blue"], num_classes=3)
    validate_samples([Sample(img, gpkg), Sample(img, lab)], **check)

    far = tmp_path / "far.tif"
    write_raster(far, np.ones((1, 80, 80), np.uint8), crs="EPSG:32633")
    with pytest.raises(RasterError, match="far.tif.*does not overlap"):
        validate_samples([Sample(img, far)], **check)
    far_poly = write_gpkg(tmp_path / "far.gpkg", [(box(0, 0, 1, 1), 1)])
    with pytest.raises(VectorError, match="far.gpkg.*no label polygons overlap"):
        validate_samples([Sample(img, far_poly)], **check)
    with pytest.raises(VectorError, match="no field 'klass'.*class_id, name"):
        validate_samples([Sample(img, gpkg, label_field="klass")], **check)
    with pytest.raises(VectorError, match="class id 2.*2 classes"):
        validate_samples([Sample(img, gpkg)], bands=check["bands"], num_classes=2)
    big = write_raster(tmp_path / "big.tif", burn([(px_box(70, 70, 71, 71), 7)], (80, 80),
                                                  fill=0)[None])
    with pytest.raises(RasterError, match="big.tif: class id 7"):
        validate_samples([Sample(img, big)], **check)
    two = make_raster("two.tif", width=80, height=80, count=2)
    with pytest.raises(ModelMismatchError, match="two.tif.*2 data bands"):
        validate_samples([Sample(two, lab)], **check)
    nocrs = write_raster(tmp_path / "nocrs.tif", np.ones((1, 40, 40), np.uint8), crs=None)
    with pytest.raises(RasterError, match="no CRS"):
        validate_samples([Sample(img, nocrs)], **check)


# -- window datasets ---------------------------------------------------------------------------

def test_windows_are_deterministic_per_seed_and_epoch(make_raster, tmp_path):
    img = make_raster("img.tif", width=100, height=90)
    lab = write_raster(tmp_path / "lab.tif", burn(POLYS, (90, 100), fill=0)[None])
    kw = dict(patch_px=24, normalization=NORM, length=6, num_classes=3)
    ds = WindowDataset([Sample(img, lab)], seed=1, **kw)
    first = pairs(ds)
    again = WindowDataset([Sample(img, lab)], seed=1, **kw)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for a, b in zip(first, pairs(again), strict=True))
    copy = pickle.loads(pickle.dumps(ds))  # what a worker process gets: paths, no handles
    np.testing.assert_array_equal(copy[4][0].numpy(), first[4][0])
    ds.set_epoch(1)
    second = pairs(ds)
    assert not any(np.array_equal(a[0], b[0]) for a, b in zip(first, second, strict=True))
    ds.set_epoch(0)
    np.testing.assert_array_equal(ds[2][1].numpy(), first[2][1])
    assert first[0][0].dtype == np.float32 and first[0][1].dtype == np.int64


def test_class_balance_finds_a_rare_class(make_raster, tmp_path):
    labels = np.zeros((200, 200), np.uint8)
    labels[:, :80] = 1  # crop: common
    for r, c in [(20, 150), (170, 30), (110, 190)]:
        labels[r:r + 2, c:c + 2] = 2  # weed: 12 pixels of 40,000
    img = make_raster("img.tif", width=200, height=200)
    lab = write_raster(tmp_path / "lab.tif", labels[None])
    kw = dict(patch_px=32, normalization=NORM, length=40, num_classes=3, seed=0)
    balanced = WindowDataset([Sample(img, lab)], class_balance=1.0, **kw)
    assert balanced.index.counts.tolist() == np.bincount(labels.ravel()).tolist()
    hits = [(balanced[i][1] == 2).any().item() for i in range(len(balanced))]
    assert sum(hits) >= 38
    plain = WindowDataset([Sample(img, lab)], class_balance=0.0, **kw)
    assert sum((plain[i][1] == 2).any().item() for i in range(len(plain))) < 15


def test_augment_is_called_with_the_item_generator(make_raster, tmp_path):
    img = make_raster("img.tif", width=64, height=64)
    lab = write_raster(tmp_path / "lab.tif", np.ones((1, 64, 64), np.uint8))

    def flip(image, label, rng):
        assert isinstance(rng, np.random.Generator) and image.dtype == np.float32
        return image[:, :, ::-1], label[:, ::-1]  # negative strides must still become tensors

    kw = dict(patch_px=32, normalization=NORM, length=3, num_classes=2, seed=4)
    plain = WindowDataset([Sample(img, lab)], **kw)
    flipped = WindowDataset([Sample(img, lab)], augment=flip, **kw)
    np.testing.assert_array_equal(flipped[1][0].numpy(), plain[1][0].numpy()[:, :, ::-1])
