"""Backends: which engine runs, the export cache, and the torch-free ONNX path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from agriseg.errors import ConfigError
from agriseg.infer.engines import cache_dir, cached_export, open_engine
from agriseg.infer.pipeline import predict_raster
from agriseg.models.checkpoint import load_model

pytest.importorskip("onnxruntime")

SAMPLES = Path(__file__).resolve().parents[2] / "sample_tiles"


def test_auto_picks_onnx_on_cpu_and_torch_for_a_loaded_model(make_checkpoint):
    ckpt = make_checkpoint()
    assert open_engine(ckpt, "auto", "cpu").backend == "onnx"
    assert open_engine(ckpt, "torch", "cpu").backend == "torch"
    assert open_engine(load_model(ckpt), "auto", "cpu").backend == "torch"


def test_exports_are_cached_by_content(make_checkpoint):
    ckpt = make_checkpoint(seed=11)
    first = cached_export(ckpt)
    assert first.parent == cache_dir() / "onnx" and first.is_file()
    mtime = first.stat().st_mtime_ns
    assert cached_export(ckpt) == first and first.stat().st_mtime_ns == mtime
    assert cached_export(make_checkpoint("b.safetensors", seed=12)) != first
    first.write_bytes(b"damaged")  # a killed export: the engine exports it again
    engine = open_engine(ckpt, "onnx", "cpu")
    assert engine.backend == "onnx" and first.stat().st_size > 1000


def test_backend_errors(make_checkpoint, tmp_path):
    ckpt = make_checkpoint()
    onnx = open_engine(ckpt, "onnx", "cpu").forward.path
    with pytest.raises(ConfigError, match="unknown backend"):
        open_engine(ckpt, "tensorrt")
    with pytest.raises(ConfigError, match="an ONNX model runs on the onnx backend"):
        open_engine(onnx, "torch")
    with pytest.raises(ConfigError, match="runs on the CPU"):
        open_engine(ckpt, "onnx", "cuda")


def test_onnx_and_torch_masks_agree(make_raster, make_checkpoint, tmp_path):
    src = make_raster(width=300, height=260)
    ckpt = make_checkpoint(patch_px=64)
    out = {}
    for backend in ("onnx", "torch"):
        r = predict_raster(src, tmp_path / f"{backend}.tif", model=ckpt, backend=backend,
                           confidence=tmp_path / f"{backend}_conf.tif")
        assert r.backend == backend
        with rasterio.open(r.mask_path) as m, rasterio.open(r.confidence_path) as c:
            out[backend] = (m.read(1), c.read(1).astype(int))
    (mo, co), (mt, ct) = out["onnx"], out["torch"]
    assert (mo == mt).mean() >= 0.999
    assert np.abs(co - ct).max() <= 1  # percent, rounded


def test_a_cached_export_maps_without_torch(tmp_path):
    env = {**os.environ}
    field = SAMPLES / "field_small.tif"
    warm = [sys.executable, "-m", "agriseg", "-q", "predict", str(field), "-o",
            str(tmp_path / "warm.tif")]
    subprocess.run(warm, check=True, env=env, capture_output=True)  # exports once
    code = ("import sys, agriseg\n"
            f"agriseg.map_field({str(field)!r}, {str(tmp_path / 'map')!r})\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    assert (tmp_path / "map" / "mask.tif").is_file()


def test_the_cache_is_the_users_cache_folder_by_default(monkeypatch, tmp_path):
    import platformdirs

    from agriseg.infer.engines import CACHE_ENV, cache_dir

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)  # what every user without the variable gets
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == Path(platformdirs.user_cache_dir("agriseg"))
    assert str(cache_dir()).startswith(str(tmp_path / "xdg"))
