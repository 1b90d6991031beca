"""PredictOptions / VectorizeOptions: checked when made, shared by every caller."""

import pytest

from agriseg.errors import ConfigError
from agriseg.options import PredictOptions, VectorizeOptions, split_options, with_options


@pytest.mark.parametrize("kw,match", [
    ({"blend": "mean"}, "unknown blend mode 'mean'; use one of hann, crop"),
    ({"batch_size": 0}, "batch size must be >= 1"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
    ({"patch_px": 0}, "patch size must be positive"),
    ({"bands": [0, 1]}, "band numbers start at 1"),
    ({"batch_size": "big"}, "batch size 'big': use auto or a whole number"),
    ({"batch_size": 2.5}, "batch size must be >= 1"),
    ({"resample": "yes"}, "unknown resample mode 'yes'; use one of auto, off"),
    ({"input_range": "0-255"}, "input range '0-255': use auto, model or MIN,MAX"),
])
def test_bad_predict_options(kw, match):
    with pytest.raises(ConfigError, match=match):
        PredictOptions(**kw)


@pytest.mark.parametrize("kw,match", [
    ({"min_area_m2": -1}, "--min-area must be >= 0"),
    ({"simplify_m": float("nan")}, "--simplify must be >= 0"),
    ({"connectivity": 6}, "connectivity must be 4 or 8"),
])
def test_bad_vectorize_options(kw, match):
    with pytest.raises(ConfigError, match=match):
        VectorizeOptions(**kw)


def test_keywords_replace_fields_and_unknown_names_are_refused():
    base = PredictOptions(batch_size=2, bands=[3, 2, 1])
    assert base.bands == (3, 2, 1)
    assert with_options(PredictOptions, base, {"device": "cpu"}) == \
        PredictOptions(batch_size=2, bands=(3, 2, 1), device="cpu")
    with pytest.raises(TypeError, match="patch_size.*PredictOptions has: patch_px"):
        with_options(PredictOptions, None, {"patch_size": 3})
    p, v = split_options({"batch_size": 4, "min_area_m2": 0.5, "connectivity": "8"})
    assert (p.batch_size, v.min_area_m2, v.connectivity) == (4, 0.5, 8)
    with pytest.raises(TypeError, match="min_aera"):
        split_options({"min_aera": 1})
    assert v.summary() == {"classes": None, "min_area_m2": 0.5, "fill_holes_m2": 0.0,
                           "simplify_m": 0.0, "connectivity": 8, "crs": None}


def test_batch_size_auto_and_numbers():
    assert PredictOptions().batch_size == "auto"
    assert PredictOptions(batch_size="AUTO").batch_size == "auto"
    assert PredictOptions(batch_size="6").batch_size == 6  # from the CLI or a manifest
    assert PredictOptions(batch_size=3).batch_size == 3
