"""The package's layers, checked on the source: what each part may import, lazily or not.

raster/ is I/O and knows no models; vector/ builds on raster/; models/ know cards and networks
and read no rasters (whether a raster fits a card is infer/'s question); jobs/ (field mapping,
evaluation, tiling, info) combine layers and sit above them; batch/ runs jobs over many rasters
and sits above jobs/; crossval (cross-validation) trains and evaluates, so it sits above
training/ and jobs/; only cli/ knows click; nothing the pipeline runs imports the sample-data
generator.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "agriseg"

# part of the package -> parts it must never import (at module level or inside a function)
FORBIDDEN = {
    "raster": {"models", "infer", "vector", "training", "jobs", "cli", "sampledata", "metrics",
               "samples", "batch", "crossval"},
    "vector": {"models", "infer", "training", "jobs", "cli", "sampledata", "batch", "crossval"},
    "models": {"raster", "infer", "vector", "training", "jobs", "cli", "sampledata", "batch",
               "crossval"},
    "infer": {"vector", "training", "jobs", "cli", "sampledata", "batch", "crossval"},
    "training": {"jobs", "cli", "sampledata", "batch", "crossval"},
    "jobs": {"cli", "sampledata", "training", "batch", "crossval"},
    "crossval": {"cli", "sampledata", "batch"},
    "metrics": {"*"},
    "constants": {"*"},
    "errors": {"*"},
    "outputs": {"*"},
    "options": {"*"},
    "hashing": {"*"},
    "styles": {"*"},
    "batch": {"cli", "sampledata", "training", "crossval"},
    "spray": {"models", "infer", "training", "jobs", "cli", "sampledata", "batch", "crossval"},
    "samples": {"models", "infer", "training", "jobs", "cli", "sampledata", "batch", "crossval"},
}
ALWAYS_ALLOWED = {"constants", "errors"}


def agriseg_imports(path: Path) -> set[str]:
    """The first component under ``agriseg`` of every agriseg module ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "agriseg" and len(parts) > 1:
                found.add(parts[1])
    return found


def part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_import_only_what_is_below_them(path):
    part = part_of(path)
    forbidden = FORBIDDEN.get(part, set())
    imported = agriseg_imports(path) - {part, "__version__"} - ALWAYS_ALLOWED
    bad = imported if "*" in forbidden else imported & forbidden
    assert not bad, f"{path.relative_to(PACKAGE)} ({part}) imports agriseg.{sorted(bad)}"


def test_only_the_cli_imports_click():
    users = [p.relative_to(PACKAGE) for p in modules() if part_of(p) != "cli"
             and "click" in {n.split(".")[0] for n in _all_imports(p)}]
    assert not users


def test_the_checker_sees_lazy_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from agriseg.models.card import ModelCard\n")
    assert agriseg_imports(probe) == {"models"}


def _all_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out
