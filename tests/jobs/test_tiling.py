"""``cut_tiles``: patches that tile the raster exactly, labels aligned to them, and the index."""

import logging

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from conftest import CRS, ORIGIN
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin
from rasterio.windows import Window
from shapely import box, unary_union

from agriseg.errors import OutputError, VectorError
from agriseg.jobs.tiling import INDEX_FIELDS, cut_tiles
from agriseg.raster.grid import make_grid
from agriseg.raster.labels import iter_label_strips


def read_index(out):
    return gpd.read_file(out / "index.gpkg", layer="patches")


def assemble_labels(out, index, shape):
    """Put the label patches back on the image grid (overlaps must agree)."""
    full = np.full(shape, 254, dtype=np.uint8)  # 254: never written by a patch
    for rec in index.itertuples():
        with rasterio.open(out / rec.label_file) as lab:
            assert lab.nodata == 255 and lab.dtypes[0] == "uint8"
            patch = lab.read(1)
        win = np.s_[rec.y_off:rec.y_off + rec.height, rec.x_off:rec.x_off + rec.width]
        seen = full[win] != 254
        assert (full[win][seen] == patch[seen]).all(), "overlapping patches disagree"
        full[win] = patch
    return full


def test_patches_tile_the_raster(make_raster, tmp_path):
    src_path = make_raster(width=300, height=200, nodata=0,
                           descriptions=("red", "green", "blue"))
    out = tmp_path / "tiles"
    res = cut_tiles(src_path, out, patch_px=64, overlap_px=16)
    grid = make_grid(200, 300, 64, 16)
    assert (res.written, res.skipped, res.total) == (len(grid), 0, len(grid))
    index = read_index(out)
    assert len(index) == len(grid) == len(list(out.glob("field_r*_c*.tif")))
    with rasterio.open(src_path) as src:
        for rec in index.itertuples():
            assert rec.file == f"field_r{rec.row:04d}_c{rec.col:04d}.tif"
            assert (rec.width, rec.height) == (64, 64) and rec.valid_fraction == 1.0
            window = Window(rec.x_off, rec.y_off, rec.width, rec.height)
            with rasterio.open(out / rec.file) as p:
                assert p.crs == src.crs and p.dtypes == src.dtypes and p.nodata == 0
                assert p.descriptions == ("red", "green", "blue")
                assert p.compression is not None
                assert np.allclose(p.xy(0, 0), src.xy(rec.y_off, rec.x_off))
                assert np.allclose(p.xy(63, 63), src.xy(rec.y_off + 63, rec.x_off + 63))
                np.testing.assert_array_equal(p.read(), src.read(window=window))
            assert rec.geometry.hausdorff_distance(box(*p.bounds)) < 1e-6
        covered, full = unary_union(list(index.geometry)), box(*src.bounds)
        assert covered.symmetric_difference(full).area < 1e-6 * full.area  # 1 px = 2e-5
    assert index.x_off.max() + 64 == 300 and index.y_off.max() + 64 == 200  # edge-aligned
    assert index.label_file.isna().all()
    info = pyogrio.read_info(out / "index.gpkg", layer="patches")
    assert tuple(info["fields"]) == INDEX_FIELDS and info["geometry_type"] == "Polygon"
    assert rasterio.crs.CRS.from_user_input(index.crs) == rasterio.crs.CRS.from_string(CRS)


def test_all_nodata_patches_are_skipped_and_counted(make_raster, tmp_path):
    data = np.random.default_rng(1).integers(1, 255, (3, 150, 200)).astype("uint8")
    data[:, :100, :110] = 0  # 2x2 patches fully no-data, c0002 rows 0-1 partly
    data[1, 5, 5] = 0  # one band at 0 is still a valid pixel (all bands must be no-data)
    src_path = make_raster(data=data, nodata=0)
    res = cut_tiles(src_path, tmp_path / "t", patch_px=50, overlap_px=0)
    assert (res.total, res.skipped, res.written) == (12, 4, 8)
    index = read_index(tmp_path / "t")
    assert len(index) == 8
    assert not (tmp_path / "t" / "field_r0000_c0000.tif").exists()
    frac = dict(zip(index.file, index.valid_fraction, strict=True))
    assert frac["field_r0000_c0002.tif"] == pytest.approx(0.8)
    assert frac["field_r0002_c0000.tif"] == 1.0


def test_alpha_band_masks_and_is_kept(make_raster, tmp_path):
    data = np.full((4, 64, 64), 200, dtype="uint8")
    data[3, :, :32] = 0  # transparent left half
    src_path = make_raster(data=data, alpha=True)
    res = cut_tiles(src_path, tmp_path / "t", patch_px=32, overlap_px=0)
    assert (res.written, res.skipped) == (2, 2)
    with rasterio.open(tmp_path / "t" / "field_r0000_c0001.tif") as p:
        assert p.count == 4 and p.colorinterp[3] == ColorInterp.alpha


def test_raster_smaller_than_patch_gives_one_patch(make_raster, tmp_path):
    src_path = make_raster(width=40, height=30)
    res = cut_tiles(src_path, tmp_path / "t", patch_px=64, overlap_px=8)
    assert (res.written, res.total) == (1, 1)
    with rasterio.open(tmp_path / "t" / "field_r0000_c0000.tif") as p, \
            rasterio.open(src_path) as src:
        assert p.shape == (30, 40) and p.transform == src.transform
        np.testing.assert_array_equal(p.read(), src.read())


def test_label_raster_on_coarser_offset_grid(make_raster, tmp_path):
    img_path = make_raster(width=120, height=100)  # 0.01 m pixels at ORIGIN
    rng = np.random.default_rng(3)
    lab = rng.integers(0, 5, (40, 40)).astype("uint8")
    lab[10:14, 5:9] = 9  # label no-data
    lab_path = tmp_path / "labels.tif"
    # 2x coarser, shifted by 1.5 image pixels; covers image cols < 77 and rows < 79 only
    ltf = from_origin(ORIGIN[0] - 0.03, ORIGIN[1] + 0.01, 0.02, 0.02)
    with rasterio.open(lab_path, "w", driver="GTiff", width=40, height=40, count=1,
                       dtype="uint8", crs=CRS, transform=ltf, nodata=9) as dst:
        dst.write(lab, 1)
    res = cut_tiles(img_path, tmp_path / "t", patch_px=48, overlap_px=8, labels=lab_path)
    index = read_index(tmp_path / "t")
    assert res.written == len(index) and index.label_file.notna().all()
    got = assemble_labels(tmp_path / "t", index, (100, 120))
    with rasterio.open(img_path) as img:
        rows, cols = np.mgrid[0:100, 0:120]
        xs, ys = rasterio.transform.xy(img.transform, rows.ravel(), cols.ravel())
    lr, lc = rasterio.transform.rowcol(ltf, xs, ys)
    lr, lc = np.asarray(lr).reshape(100, 120), np.asarray(lc).reshape(100, 120)
    inside = (lr >= 0) & (lr < 40) & (lc >= 0) & (lc < 40)
    expected = np.full((100, 120), 255, dtype=np.uint8)
    expected[inside] = lab[lr[inside], lc[inside]]
    expected[expected == 9] = 255
    assert (expected[:, 77:] == 255).all() and (expected[79:] == 255).all()
    np.testing.assert_array_equal(got, expected)


def write_polygons(path, crs="EPSG:4326", field="class_id"):
    """Two rectangles drawn in the image CRS (class 1 and 2), saved in ``crs``."""
    x0, y0 = ORIGIN
    polys = [box(x0 + 0.103, y0 - 0.403, x0 + 0.303, y0 - 0.203),   # cols 10-29, rows 20-39
             box(x0 + 0.503, y0 - 0.703, x0 + 0.653, y0 - 0.053)]   # cols 50-64, rows 5-69
    gdf = gpd.GeoDataFrame({field: [1, 2], "name": ["crop", "weed"]}, geometry=polys, crs=CRS)
    gdf.to_crs(crs).to_file(path, layer="labels", driver="GPKG")
    return path


def test_vector_labels_are_reprojected_and_burnt(make_raster, tmp_path):
    img_path = make_raster(width=100, height=80)
    gpkg = write_polygons(tmp_path / "labels.gpkg")
    cut_tiles(img_path, tmp_path / "t", patch_px=48, overlap_px=8, labels=gpkg)
    index = read_index(tmp_path / "t")
    got = assemble_labels(tmp_path / "t", index, (80, 100))
    expected = np.zeros((80, 100), dtype=np.uint8)  # not covered -> background
    expected[20:40, 10:30] = 1
    expected[5:70, 50:65] = 2
    np.testing.assert_array_equal(got, expected)


def test_labels_are_unknown_where_the_image_is_nodata(make_raster, tmp_path):
    data = np.full((3, 60, 60), 7, dtype="uint8")
    data[:, :10, :] = 0
    img_path = make_raster(data=data, nodata=0)
    gpkg = write_polygons(tmp_path / "labels.gpkg")
    cut_tiles(img_path, tmp_path / "t", patch_px=60, overlap_px=0, labels=gpkg)
    with rasterio.open(tmp_path / "t" / "labels" / "field_r0000_c0000.tif") as lab:
        classes = lab.read(1)
    assert (classes[:10] == 255).all() and (classes[20:40, 10:30] == 1).all()


def test_bad_label_field_names_the_fields(make_raster, tmp_path):
    img_path = make_raster(width=50, height=50)
    gpkg = write_polygons(tmp_path / "labels.gpkg")
    with pytest.raises(VectorError, match="class_id.*name"):
        cut_tiles(img_path, tmp_path / "t", patch_px=32, overlap_px=0, labels=gpkg,
                  label_field="klass")
    with pytest.raises(VectorError, match="holds names.*no class list"):
        cut_tiles(img_path, tmp_path / "t", patch_px=32, overlap_px=0, labels=gpkg,
                  label_field="name")
    with pytest.raises(VectorError, match=r"'crop' is not a class; valid names: soil, weed \("):
        cut_tiles(img_path, tmp_path / "t", patch_px=32, overlap_px=0, labels=gpkg,
                  label_field="name", classes=["soil", "weed"])
    assert not (tmp_path / "t").exists()
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_label_field_of_class_names(make_raster, tmp_path):
    """Labelling tools write names: they map to ids by the class list, ignoring case."""
    img_path = make_raster(width=100, height=80)
    gpkg = write_polygons(tmp_path / "labels.gpkg")
    gdf = gpd.read_file(gpkg)
    gdf["name"] = ["Crop", "WEED"]
    gdf.to_file(gpkg, layer="labels", driver="GPKG")
    cut_tiles(img_path, tmp_path / "ids", patch_px=48, overlap_px=8, labels=gpkg)
    cut_tiles(img_path, tmp_path / "names", patch_px=48, overlap_px=8, labels=gpkg,
              label_field="name", classes=["soil", "crop", "weed"])
    index = read_index(tmp_path / "ids")
    by_id = assemble_labels(tmp_path / "ids", index, (80, 100))
    by_name = assemble_labels(tmp_path / "names", index, (80, 100))
    assert (by_id == 1).sum() == 400 and (by_id == 2).sum() == 15 * 65
    np.testing.assert_array_equal(by_name, by_id)


def test_raster_without_crs(make_raster, tmp_path, caplog, monkeypatch):
    log = logging.getLogger("agriseg")
    monkeypatch.setattr(log, "handlers", [])  # a CLI test may have left its own handler
    monkeypatch.setattr(log, "propagate", True)
    caplog.set_level(logging.WARNING, logger="agriseg")
    src_path = make_raster(width=70, height=40, crs=None)
    res = cut_tiles(src_path, tmp_path / "t", patch_px=40, overlap_px=10)
    assert res.written == 2
    assert any("no CRS" in r.getMessage() for r in caplog.records)
    with rasterio.open(tmp_path / "t" / "field_r0000_c0001.tif") as p:
        assert p.crs is None
    assert read_index(tmp_path / "t").crs is None


def test_existing_folder_needs_overwrite(make_raster, tmp_path):
    src_path = make_raster(width=50, height=50)
    out = tmp_path / "t"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="--overwrite"):
        cut_tiles(src_path, out, patch_px=32, overlap_px=0)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    res = cut_tiles(src_path, out, patch_px=32, overlap_px=0, overwrite=True)
    assert res.written == 4 and not (out / "keep.txt").exists()


def test_label_strips_read_each_row_once():
    grid = make_grid(100, 30, 40, 15)

    class Counting:
        rows = 0

        def read(self, window):
            self.rows += int(window.height)
            r0 = int(window.row_off)
            return np.repeat(np.arange(r0, r0 + int(window.height), dtype=np.uint8)[:, None],
                             30, axis=1)

    reader = Counting()
    strips = [s.copy() for s in iter_label_strips(reader, grid)]  # one buffer, reused
    assert reader.rows == 100
    for y0, strip in zip(grid.rows, strips, strict=True):
        np.testing.assert_array_equal(strip[:, 0], np.arange(y0, y0 + 40))
