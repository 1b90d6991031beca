"""``import agriseg``: the public API, lazily loaded, documented, and runnable as documented."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import agriseg

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ["predict", "predict_array", "vectorize", "map_field", "evaluate", "train",
             "load_model", "prescribe"]


def test_importing_agriseg_loads_no_torch():
    code = ("import sys, agriseg; agriseg.vectorize; agriseg.PredictOptions; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "agriseg.predict; assert 'torch' not in sys.modules, 'predict imported torch'; "
            "agriseg.prescribe; assert 'torch' not in sys.modules, 'prescribe imported torch'; "
            "agriseg.load_model; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_name_in_all_resolves():
    for name in agriseg.__all__:
        assert getattr(agriseg, name) is not None
    assert set(FUNCTIONS) <= set(agriseg.__all__) and set(FUNCTIONS) <= set(dir(agriseg))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        agriseg.nope  # noqa: B018


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_have_numpy_style_docstrings(name):
    doc = getattr(agriseg, name).__doc__
    for section in ("Parameters\n    ----------", "Returns\n    -------",
                    "Raises\n    ------"):
        assert section in doc, f"agriseg.{name}: no {section.split()[0]} section"


def test_source_destination_then_keywords():
    import inspect

    for name in ("predict", "vectorize", "map_field"):
        params = list(inspect.signature(getattr(agriseg, name)).parameters.values())
        assert [p.kind for p in params[:2]] == [inspect.Parameter.POSITIONAL_OR_KEYWORD] * 2
        assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[2:]), name


def api_examples() -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_docs_show_every_function():
    code = "\n".join(api_examples())
    for name in FUNCTIONS:
        assert f"agriseg.{name}(" in code, f"docs/api.md has no example of agriseg.{name}"


def test_every_example_in_the_docs_runs(tmp_path, monkeypatch):
    """The examples run in order in one namespace, from a folder holding the sample tiles."""
    (tmp_path / "sample_tiles").symlink_to(ROOT / "sample_tiles")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(api_examples()):
        try:
            exec(compile(block, f"docs/api.md example {i + 1}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"docs/api.md example {i + 1} failed: {e!r}\n{block}") from e


def test_info_vectorize_and_batch_commands_load_no_torch(tmp_path):
    """The CLI imports torch only for the commands that run a model; ``batch`` runs it in its
    worker processes only."""
    code = ("import sys; from agriseg.cli.main import cli; sys.argv = sys.argv[1:]\n"
            "try:\n    cli()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    tiles = ROOT / "sample_tiles"
    for args in (["info", tiles / "field_small.tif"],
                 ["-q", "vectorize", tiles / "field_small_labels.tif", "-o",
                  tmp_path / "f.gpkg"],
                 ["-q", "batch", tiles / "field_small.tif", "-o", tmp_path / "maps"],
                 ["-q", "prescribe", tiles / "field_small_labels.tif", "-o",
                  tmp_path / "spray"]):
        subprocess.run([sys.executable, "-c", code, "agriseg", *map(str, args)], check=True,
                       capture_output=True)
