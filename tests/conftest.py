"""Shared fixtures: tiny generated rasters and checkpoints, and the real Carrot-Weed data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from agriseg.models.card import ModelCard, Normalization
from agriseg.models.checkpoint import save_checkpoint
from agriseg.models.registry import create_model


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache(tmp_path_factory):
    """ONNX exports go to a folder of the test session, never the user's cache."""
    import os

    os.environ["AGRISEG_CACHE_DIR"] = str(tmp_path_factory.mktemp("agriseg-cache"))
    yield


@pytest.fixture(autouse=True)
def _fresh_logging():
    """Undo what a CLI test's logging set-up did, so ``caplog`` sees agriseg's records."""
    import logging

    yield
    for name in ("agriseg", "rasterio"):
        log = logging.getLogger(name)
        log.handlers.clear()
        log.propagate = True
        log.setLevel(logging.NOTSET)


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "carrot-weed"
CRS = "EPSG:32634"
# GDAL before 3.12 (e.g. pyogrio 0.10's 3.9, `make test-min`) writes one-part features of
# strict RFC 7946 GeoJSON as Polygon, whatever the layer's type; 3.12 keeps MultiPolygon
STRICT_GEOJSON_TYPES = ({"MultiPolygon"} if pyogrio.__gdal_version__ >= (3, 12)
                        else {"Polygon", "MultiPolygon"})


def geojson_polygons(geometry: dict) -> list:
    """The polygons (lists of rings) of a GeoJSON Polygon or MultiPolygon."""
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    return geometry["coordinates"]
ORIGIN = (500000.0, 4650000.0)


def write_raster(path: Path, data: np.ndarray, *, crs: str | None = CRS, pixel_size: float = 0.01,
                 nodata: float | None = None, descriptions: Sequence[str] | None = None,
                 alpha: bool = False, blocksize: int = 256,
                 origin: tuple[float, float] = ORIGIN, **extra) -> Path:
    """Write ``data`` (bands, rows, cols) as a tiled GeoTIFF; ``origin``: its top-left
    corner in ``crs``."""
    count, height, width = data.shape
    profile = dict(driver="GTiff", width=width, height=height, count=count, dtype=data.dtype,
                   nodata=nodata, tiled=True, blockxsize=blocksize, blockysize=blocksize,
                   compress="deflate", **extra)
    if crs is not None:
        profile.update(crs=crs, transform=from_origin(*origin, pixel_size, pixel_size))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            for i, d in enumerate(descriptions, 1):
                dst.set_band_description(i, d)
        if alpha:
            ci = list(dst.colorinterp)
            ci[-1] = rasterio.enums.ColorInterp.alpha
            dst.colorinterp = ci
    return path


@pytest.fixture
def make_raster(tmp_path: Path) -> Callable[..., Path]:
    """Factory for random rasters: ``make_raster(width=..., height=..., dtype=...)``."""

    def make(name: str = "field.tif", *, width: int = 300, height: int = 200, count: int = 3,
             dtype: str = "uint8", seed: int = 0, data: np.ndarray | None = None,
             **kw) -> Path:
        if data is None:
            rng = np.random.default_rng(seed)
            hi = {"uint8": 256, "uint16": 10000, "int16": 3000}.get(dtype)
            if hi is None:
                data = rng.random((count, height, width), dtype=np.float32)
            else:
                data = rng.integers(1, hi, (count, height, width)).astype(dtype)
        return write_raster(tmp_path / name, data, **kw)

    return make


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> Callable[..., Path]:
    """Factory for small random-weight checkpoints (per-pixel model by default)."""

    def make(name: str = "model.safetensors", *, arch: str = "pixel",
             encoder_name: str = "resnet18", bands: Sequence[str] = ("red", "green", "blue"),
             classes: Sequence[str] = ("soil", "crop", "weed"), dtype: str = "uint8",
             normalization: Normalization | None = None, patch_px: int = 64, seed: int = 0,
             **arch_kw) -> Path:
        torch.manual_seed(seed)
        model = create_model(arch, encoder_name, in_channels=len(bands), classes=len(classes),
                             **arch_kw)
        if arch == "pixel":  # default init predicts one class everywhere; spread the logits
            with torch.no_grad():
                for p in model.parameters():
                    p.normal_(0.0, 1.0)
        if normalization is None:
            scale = {"uint8": 255.0, "uint16": 10000.0, "int16": 3000.0}.get(dtype, 1.0)
            normalization = Normalization(mean=(scale / 2,) * len(bands),
                                          std=(scale / 4,) * len(bands))
        cfg = {"arch": arch, **arch_kw}
        if arch != "pixel":
            cfg["encoder_name"] = encoder_name
        card = ModelCard(arch=cfg, bands=tuple(bands), classes=tuple(classes), dtype=dtype,
                         normalization=normalization, patch_px=patch_px, pixel_size_m=0.01)
        return save_checkpoint(tmp_path / name, model, card)

    return make


@pytest.fixture
def carrot_weed() -> Path:
    """The real Carrot-Weed rasters in ../shared, or skip when they are not there."""
    if not SHARED_DATA.is_dir() or not any(SHARED_DATA.glob("IMG_*_labels.tif")):
        pytest.skip("../shared/data/carrot-weed not present")
    return SHARED_DATA


def squares_field(path, label_path, seed, size=96):
    """Bright squares (class 1) and dark discs (class 2) on textured soil (class 0)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(110, 12, (3, size, size))
    lab = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(6):
        y, x = rng.integers(0, size - 14, 2)
        img[:, y:y + 12, x:x + 12] = rng.normal(220, 8, (3, 12, 12))
        lab[y:y + 12, x:x + 12] = 1
        cy, cx = rng.integers(6, size - 6, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 25
        img[:, disc] = rng.normal(30, 5, (3, int(disc.sum())))
        lab[disc] = 2
    write_raster(path, np.clip(img, 0, 255).astype(np.uint8),
                 descriptions=("red", "green", "blue"))
    write_raster(label_path, lab[None], nodata=255)


@pytest.fixture(scope="session")
def fields(tmp_path_factory) -> Path:
    """Three small labelled fields of squares and discs (training tests; f2 validates)."""
    folder = tmp_path_factory.mktemp("fields")
    for i in range(3):
        squares_field(folder / f"f{i}.tif", folder / f"f{i}_labels.tif", seed=i)
    return folder


# A 12 m x 10 m field at 2 cm (600 x 500 px): soil with crop rows, three weed patches of known
# size, and a no-data triangle in the north-east corner. Patches are (row, col, rows, cols).
WEED_PATCHES = ((60, 80, 30, 20), (260, 300, 12, 40), (430, 520, 25, 25))


def weed_field(path: Path, *, crs: str = CRS, geographic: bool = False,
               classes: Sequence[str] = ("soil", "crop", "weed"), pixel_size: float = 0.02,
               patches=WEED_PATCHES) -> Path:
    """Write the generated weed-map mask; ``geographic`` puts it in EPSG:4326 near 21E 42N
    with about the same ground size."""
    import json

    mask = np.zeros((500, 600), np.uint8)
    mask[:, ::25] = 1  # crop rows every 0.5 m
    for r, c, h, w in patches:
        mask[r:r + h, c:c + w] = 2
    rr, cc = np.mgrid[0:500, 0:600]
    mask[cc - rr > 520] = 255  # no data in the north-east corner
    kw: dict = {"crs": crs, "pixel_size": pixel_size}
    if geographic:
        kw = {"crs": "EPSG:4326", "pixel_size": pixel_size / 111_000.0,
              "origin": (21.0, 42.0)}
    path = write_raster(path, mask[None], nodata=255, **kw)
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(classes=json.dumps(list(classes)))
    return path


# the smallest network that trains: for tests of the training loop, budgets and folds
TINY_ARCH = "{arch: unet, encoder_name: resnet18, encoder_depth: 3, decoder_channels: [16, 8, 8]}"


def tiny_train_config(folder, out, *extra):
    """A training config on ``folder``'s ``f?.tif`` fields with the tiny network, 64 px
    windows, 8 windows an epoch; ``extra`` KEY=VALUE overrides come last and win."""
    from agriseg.training.config import load_config

    return load_config(None, [f"images={folder}/f?.tif", f"labels={folder}",
                              f"arch={TINY_ARCH}", "patch_px=64", "batch_size=4",
                              "windows_per_epoch=8", "lr=0.01", f"out_dir={out}", *extra])
