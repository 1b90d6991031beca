"""The ``agriseg`` command group: logging, the GDAL environment and error reporting.

Commands are thin: parse options, make one library call, print the result. An ``AgrisegError``
(bad input) becomes one line on stderr and exit code 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
import rasterio

from agriseg import __version__
from agriseg.errors import AgrisegError

EXIT_BAD_INPUT = 2


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.WARNING)
    log = logging.getLogger("agriseg")
    log.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter())
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


class AgrisegGroup(click.Group):
    """A group that reports user errors as one line with exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AgrisegError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt:
            click.echo("Interrupted; no partial outputs were left.", err=True)
            ctx.exit(130)


@click.group(cls=AgrisegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for GDAL debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bars.")
@click.version_option(__version__, prog_name="agriseg")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Map crops and weeds in drone and field imagery."""
    _setup_logging(verbose, quiet)
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    ctx.obj["verbose"] = verbose
    ctx.obj["env"] = ctx.with_resource(rasterio.Env(CPL_DEBUG=verbose > 1))


def _register() -> None:
    from agriseg.cli import evaluate, info, map, models, predict, tile, train, vectorize

    for mod in (evaluate, info, map, models, predict, tile, train, vectorize):
        cli.add_command(mod.command)


_register()
