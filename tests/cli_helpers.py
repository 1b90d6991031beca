"""Helpers shared by the CLI tests."""

from click.testing import CliRunner

from agriseg.cli.main import cli


def run(*args):
    """Invoke ``agriseg`` with ``args`` (converted to strings)."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_bad_input(result, *words):
    """Exit code 2, exactly one ``Error: ...`` line containing ``words``, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for w in words:
        assert w in lines[0], lines[0]
    assert "Traceback" not in result.output
