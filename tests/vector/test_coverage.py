"""Exact coverage and honest areas: edge-matched polygons in every CRS, bounded simplification."""

import json

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from conftest import STRICT_GEOJSON_TYPES, geojson_polygons
from rasterio.transform import from_origin
from scipy import ndimage

from agriseg.vector.coverage import Junctions, junction_keys, match_vertices
from agriseg.vector.vectorize import vectorize_mask

CLASSES = json.dumps(["soil", "crop", "weed"])
ALL = ["soil", "crop", "weed"]


def write_mask(path, mask, crs="EPSG:32634", transform=None):
    with rasterio.open(path, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0],
                       count=1, dtype="uint8", nodata=255, crs=crs,
                       transform=transform or from_origin(500000.0, 4650000.0, 0.01, 0.01)
                       ) as dst:
        dst.write(mask, 1)
        dst.update_tags(classes=CLASSES)
    return path


def busy_field(h=160, w=200, seed=1):
    """Three classes in blobs, one-pixel specks of weed everywhere, and a no-data corner:
    T-junctions (three labels at one corner) all over."""
    rng = np.random.default_rng(seed)
    g = ndimage.gaussian_filter(rng.standard_normal((h, w)), 2.5)
    m = np.digitize(g, np.quantile(g, [0.5, 0.8])).astype(np.uint8)
    m[rng.random((h, w)) < 0.01] = 2
    m[:25, -30:] = 255
    return m


def read(path):
    gdf = gpd.read_file(path, engine="pyogrio", layer=0)  # a GeoPackage also holds layer_styles
    return gdf, np.array(gdf.geometry.values)


@pytest.mark.parametrize("transpose", [False, True])
def test_a_t_junction_is_a_vertex_of_every_polygon_through_it(tmp_path, transpose):
    mask = np.zeros((4, 6), np.uint8)
    mask[:, :3] = 1   # crop on the left, 3 px wide and 4 tall: its right edge runs straight
    mask[:2, 3:] = 2  # weed top right, soil bottom right: they meet the crop at (3, 2)
    junction = (3.0, 2.0)
    if transpose:  # the same with a horizontal edge
        mask, junction = np.ascontiguousarray(mask.T), (2.0, 3.0)
    src = write_mask(tmp_path / "t.tif", mask, transform=from_origin(0, 0, 1, -1))
    vectorize_mask(src, tmp_path / "t.gpkg", classes=ALL)
    gdf, geoms = read(tmp_path / "t.gpkg")
    crop = geoms[gdf.class_name == "crop"][0]
    assert junction in {tuple(c) for c in shapely.get_coordinates(crop)}
    assert shapely.get_num_coordinates(crop) == 6  # 4 corners, the junction, the closing one
    assert shapely.coverage_is_valid(geoms)


def test_junctions_found_strip_by_strip_equal_one_pass():
    mask = busy_field(60, 70)
    one = junction_keys(0, mask, None, None)
    parts = [junction_keys(y, mask[y:y + 7], mask[y - 1] if y else None,
                           mask[y + 7] if y + 7 < 60 else None) for y in range(0, 60, 7)]
    # a strip's last corner row is the next one's first: each reports its own rows
    own = [k[k < (y + 7) * 71] if y + 7 < 60 else k
           for y, k in zip(range(0, 60, 7), parts, strict=True)]
    assert (np.concatenate(own) == one).all() and len(one) > 50
    j = Junctions(70, 60)
    for k in own:
        j.add(k)
    keys = np.arange(61 * 71)
    assert (j.contains(keys) == np.isin(keys, one)).all()
    with pytest.raises(ValueError, match="increasing"):
        j.add(own[0])


def test_match_vertices_keeps_turns_and_junctions_only():
    j = Junctions(10, 10, junction_keys(0, np.zeros((10, 10), np.uint8), None, None))
    assert len(j) == 0  # one label: no junction anywhere
    square = shapely.segmentize(shapely.box(2, 2, 6, 6), 1.0)  # 16 vertices, 4 turns
    (out,) = match_vertices(np.array([square]), j)
    assert shapely.get_num_coordinates(out) == 5 and shapely.equals(out, shapely.box(2, 2, 6, 6))


@pytest.mark.parametrize("crs", [None, "EPSG:4326", "EPSG:3857"])
@pytest.mark.parametrize("opts", [{}, {"simplify_m": 0.03}, {"connectivity": 8},
                                  {"min_area_m2": 0.0005, "simplify_m": 0.05}])
def test_polygons_are_an_exact_coverage_in_every_crs(tmp_path, crs, opts):
    mask = busy_field()
    src = write_mask(tmp_path / "m.tif", mask)
    out = tmp_path / "p.gpkg"
    vectorize_mask(src, out, classes=ALL, crs=crs, strip_rows=23, **opts)
    gdf, geoms = read(out)
    assert shapely.is_valid(geoms).all() and not shapely.is_empty(geoms).any()
    assert shapely.coverage_is_valid(geoms)
    if crs is None:  # all classes: the polygons tile exactly the valid pixels
        union = shapely.coverage_union_all(geoms)
        assert union.area == pytest.approx((mask != 255).sum() * 1e-4, rel=1e-9)


def test_crop_and_weed_alone_share_identical_edges_after_reprojection(tmp_path):
    """Only crop and weed exported (the default): their shared edges still match exactly."""
    src = write_mask(tmp_path / "m.tif", busy_field())
    vectorize_mask(src, tmp_path / "p.gpkg", crs="EPSG:4326")
    gdf, geoms = read(tmp_path / "p.gpkg")
    assert set(gdf.class_name) == {"crop", "weed"}
    assert shapely.coverage_is_valid(geoms)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="touches")
    shared = [shapely.length(shapely.intersection(geoms[i], geoms[j]))
              for i, j in zip(left, right, strict=True) if i < j]
    assert sum(s > 0 for s in shared) > 20  # many neighbours share an edge, none overlaps


@pytest.mark.parametrize("tolerance", [0.02, 0.05, 0.2])
def test_simplification_bounds_every_area(tmp_path, tolerance):
    src = write_mask(tmp_path / "m.tif", busy_field())
    vectorize_mask(src, tmp_path / "raw.gpkg", classes=ALL)
    vectorize_mask(src, tmp_path / "s.gpkg", classes=ALL, simplify_m=tolerance)
    raw, raw_g = read(tmp_path / "raw.gpkg")
    simp, simp_g = read(tmp_path / "s.gpkg")
    assert len(simp) == len(raw)  # never removes a polygon (and writes them in the same order)
    assert (simp.class_id.values == raw.class_id.values).all()
    assert not shapely.is_empty(simp_g).any()
    change = simp.area_m2.values / raw.area_m2.values - 1
    assert np.abs(change).max() <= 0.10
    for c in (0, 1, 2):
        sel = raw.class_id.values == c
        assert simp.area_m2.values[sel].sum() == pytest.approx(raw.area_m2.values[sel].sum(),
                                                              rel=0.01)
    assert shapely.coverage_is_valid(simp_g)
    # edges against no data are simplified too, within the class bounds
    assert shapely.coverage_union_all(simp_g).area == pytest.approx(
        shapely.coverage_union_all(raw_g).area, rel=0.01)
    with rasterio.open(src) as ds:
        frame = shapely.box(*ds.bounds)
    assert shapely.within(simp_g, frame).all()  # but the raster's frame never moves
    # it still simplifies: the specks stay exact squares, the blobs lose vertices
    assert shapely.get_num_coordinates(simp_g).sum() < 0.9 * shapely.get_num_coordinates(
        raw_g).sum()
    specks = raw.area_m2.values < 1.5e-4
    assert shapely.equals(simp_g[specks], raw_g[specks]).all()


def test_single_pixel_weeds_are_not_shrunk(tmp_path):
    """The defect: --simplify turned every one-pixel weed into a half-area triangle."""
    mask = np.zeros((50, 50), np.uint8)
    mask[5:45:4, 5:45:4] = 2
    src = write_mask(tmp_path / "m.tif", mask)
    r = vectorize_mask(src, tmp_path / "s.gpkg", simplify_m=0.05)
    gdf, _ = read(tmp_path / "s.gpkg")
    assert len(gdf) == 100 and np.allclose(gdf.area_m2, 1e-4)
    assert r.area_m2_per_class["weed"] == pytest.approx(r.pixel_area_m2_per_class["weed"])


def test_strict_geojson_keeps_small_polygons_polygons(tmp_path):
    """Rounding a 1 cm mask to 7 decimals (about 1 cm) collapsed one-pixel weeds into lines:
    such masks get more decimals; every feature stays a valid polygon, ccw, no crs member."""
    src = write_mask(tmp_path / "m.tif", busy_field())
    vectorize_mask(src, tmp_path / "p.geojson", crs="EPSG:4326", simplify_m=0.02)
    doc = json.loads((tmp_path / "p.geojson").read_text())
    assert "crs" not in doc
    coords = []
    for f in doc["features"]:
        assert f["geometry"]["type"] in STRICT_GEOJSON_TYPES
        for poly in geojson_polygons(f["geometry"]):
            assert shapely.LinearRing(poly[0]).is_ccw
            assert all(not shapely.LinearRing(h).is_ccw for h in poly[1:])
            coords += [c for ring in poly for c in ring]
    decimals = {len(repr(v).split(".")[1]) for c in coords for v in c if "." in repr(v)}
    assert max(decimals) == 9  # 1 cm pixels: 1e-9 degrees, 1/20 of a pixel or finer
    gdf, geoms = read(tmp_path / "p.geojson")
    assert shapely.is_valid(geoms).all() and shapely.coverage_is_valid(geoms)


def test_pixel_areas_count_every_class_before_sieving(tmp_path):
    mask = busy_field()
    src = write_mask(tmp_path / "m.tif", mask)
    r = vectorize_mask(src, tmp_path / "p.gpkg", min_area_m2=0.001)
    counts = np.bincount(mask.ravel(), minlength=256)
    assert r.pixels_per_class == {"soil": counts[0], "crop": counts[1], "weed": counts[2]}
    assert r.pixel_area_m2_per_class["soil"] == pytest.approx(counts[0] * 1e-4)
    assert r.nodata_pixels == counts[255] and r.exported == ["crop", "weed"]
    assert r.area_m2_per_class["weed"] < 0.97 * r.pixel_area_m2_per_class["weed"]  # sieved


def test_real_labels_stay_a_coverage_when_simplified_and_reprojected(carrot_weed, tmp_path):
    labels = carrot_weed / "IMG_3438_labels.tif"
    vectorize_mask(labels, tmp_path / "raw.gpkg", classes=ALL)
    vectorize_mask(labels, tmp_path / "s.gpkg", classes=ALL, simplify_m=0.02,
                   crs="EPSG:4326")
    raw, _ = read(tmp_path / "raw.gpkg")
    simp, geoms = read(tmp_path / "s.gpkg")
    assert shapely.coverage_is_valid(geoms) and len(simp) == len(raw)
    assert np.abs(simp.area_m2.values / raw.area_m2.values - 1).max() <= 0.10


@pytest.mark.parametrize("suffix", [".gpkg", ".shp", ".geojson", ".fgb", ".parquet"])
def test_every_format_reads_back_as_an_exact_coverage(tmp_path, suffix):
    """Read back with pyogrio (GeoParquet with geopandas' reader: GDAL here has no Arrow):
    CRS, geometry type, fields, and the coverage survive reprojection and the format."""
    src = write_mask(tmp_path / "m.tif", busy_field())
    out = tmp_path / f"p{suffix}"
    vectorize_mask(src, out, crs="EPSG:4326", simplify_m=0.02)
    if suffix == ".parquet":
        gdf = gpd.read_parquet(out)
    else:
        info = pyogrio.read_info(out)
        assert info["crs"] == "EPSG:4326"
        assert info["geometry_type"] == ("Polygon" if suffix == ".shp" else "MultiPolygon") or (
            suffix == ".geojson" and "Polygon" in STRICT_GEOJSON_TYPES)
        assert list(info["fields"]) == ["class_id", "class_name", "area_m2", "area_ha",
                                        "perim_m", "source"]
        gdf = pyogrio.read_dataframe(out)
    assert gdf.crs.to_epsg() == 4326 and len(gdf) > 100
    geoms = np.array(gdf.geometry.values)
    assert shapely.is_valid(geoms).all() and shapely.coverage_is_valid(geoms)


def test_geographic_mask_pixel_and_polygon_areas_agree(tmp_path):
    """In degrees a pixel's ground area shrinks with latitude: the mask's per-row pixel areas
    and the polygons' equal-area areas describe the same ground."""
    mask = busy_field(120, 90)
    t = from_origin(21.0, 60.01, 2e-7, 1e-7)  # about 1.1 cm x 1.1 cm at 60 N
    src = write_mask(tmp_path / "g.tif", mask, crs="EPSG:4326", transform=t)
    r = vectorize_mask(src, tmp_path / "g.gpkg", classes=ALL)
    for name in ALL:
        assert r.area_m2_per_class[name] == pytest.approx(r.pixel_area_m2_per_class[name],
                                                          rel=1e-6)


def test_worker_processes_give_the_same_edge_matched_polygons(tmp_path):
    src = write_mask(tmp_path / "m.tif", busy_field())
    frames = []
    for workers in (0, 2):
        out = tmp_path / f"w{workers}.gpkg"
        vectorize_mask(src, out, classes=ALL, strip_rows=17, workers=workers)
        frames.append(read(out))
    (a, ga), (b, gb) = frames
    assert len(a) == len(b) > 100 and shapely.coverage_is_valid(gb)
    assert shapely.equals_exact(ga, gb, tolerance=0).all()  # vertex for vertex, in order


def test_near_never_misses_a_junction_in_a_box():
    rng = np.random.default_rng(3)
    w, h = 500, 300
    xy = np.unique(rng.integers(0, [w + 1, h + 1], size=(400, 2)), axis=0)
    keys = np.sort(xy[:, 1].astype(np.int64) * (w + 1) + xy[:, 0])
    j = Junctions(w, h, keys)
    lo = rng.integers(0, [w, h], size=(2000, 2))
    boxes = np.column_stack([lo, lo + rng.integers(0, 40, size=(2000, 2))])
    inside = ((xy[None, :, 0] >= boxes[:, None, 0]) & (xy[None, :, 0] <= boxes[:, None, 2])
              & (xy[None, :, 1] >= boxes[:, None, 1]) & (xy[None, :, 1] <= boxes[:, None, 3]))
    near = j.near(boxes.astype(float), block=16)
    assert near[inside.any(axis=1)].all()  # never a false no
    assert not near.all()  # and it does rule boxes out
