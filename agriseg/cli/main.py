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
import rasterio.env

from agriseg import __version__
from agriseg.errors import AgrisegError

EXIT_BAD_INPUT = 2


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _setup_logging(verbose: int, quiet: bool) -> None:
    """``-q``: errors only; ``-v``: agriseg's info and debug lines; ``-vv``: also GDAL's own
    debug messages (CPL_DEBUG), which rasterio passes on to its logger."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.WARNING)
    _attach(logging.getLogger("agriseg"), level)
    gdal = logging.getLogger("rasterio")
    if verbose > 1 and not quiet:
        _attach(gdal, logging.DEBUG)
    else:  # rasterio's warnings keep Python's default route
        gdal.handlers = [h for h in gdal.handlers if not getattr(h, "agriseg", False)]
        gdal.propagate = True


def _attach(log: logging.Logger, level: int) -> None:
    log.handlers = [h for h in log.handlers if not getattr(h, "agriseg", False)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter())
    handler.agriseg = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def _verbosity(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """``-v``/``-q`` given after the command name (``agriseg map F -o D -q``) count too."""
    if not value or ctx.resilient_parsing:
        return
    obj = ctx.find_root().ensure_object(dict)
    if param.name == "quiet":
        obj["quiet"] = True
    else:
        obj["verbose"] = obj.get("verbose", 0) + value
    _setup_logging(obj.get("verbose", 0), obj.get("quiet", False))
    if obj.get("verbose", 0) > 1:
        rasterio.env.set_gdal_config("CPL_DEBUG", True)


def verbosity_params() -> list[click.Option]:
    """The group's ``-v``/``-q``, accepted by every command as well."""
    return [click.Option(["-v", "--verbose"], count=True, expose_value=False,
                         callback=_verbosity, help="More log output (-vv adds GDAL's debug)."),
            click.Option(["-q", "--quiet"], is_flag=True, expose_value=False,
                         callback=_verbosity, help="Only errors; no progress bars.")]


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
@click.option("-v", "--verbose", count=True, help="More log output (-vv adds GDAL's debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bars.")
@click.version_option(__version__, prog_name="agriseg")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Map crops and weeds in drone and field imagery."""
    _setup_logging(verbose, quiet)
    _one_malloc_arena()
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    ctx.obj["verbose"] = verbose
    ctx.obj["env"] = ctx.with_resource(rasterio.Env(CPL_DEBUG=verbose > 1))


def _one_malloc_arena() -> None:
    """Let this process's threads share one glibc malloc arena.

    The reader, the writer and ONNX Runtime's threads each get an arena of their own by
    default, and the batch-sized buffers they free stay spread over all of them: 44 MiB of peak
    RSS on a 4096^2 ONNX predict at batch 4 (587,476 vs 632,568 KB with MALLOC_ARENA_MAX=8,
    /usr/bin/time), at the same speed (the big allocations are few). No-op off glibc and when
    MALLOC_ARENA_MAX is set.
    """
    import contextlib
    import ctypes
    import os

    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-8, 1)  # M_ARENA_MAX


def _register() -> None:
    from agriseg.cli import (
        batch,
        evaluate,
        export,
        info,
        map,
        models,
        predict,
        prescribe,
        tile,
        train,
        vectorize,
    )

    for mod in (batch, evaluate, export, info, map, models, predict, prescribe, tile, train,
                vectorize):
        mod.command.params.extend(verbosity_params())
        cli.add_command(mod.command)


_register()
