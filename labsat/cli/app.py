"""The typer application and what every command shares: options, errors, tables, JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import click
import typer
from rich.console import Console
from rich.table import Table

from labsat import __version__
from labsat.bench import Bench, builtin_bench_path, open_bench
from labsat.cli.help import PlainHelpGroup
from labsat.errors import LabsatError
from labsat.ownership import announce
from labsat.paths import data_dir

app = typer.Typer(
    name="labsat",
    help="Hardware-in-the-loop control and sharpness-aware training for physical neural networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=PlainHelpGroup,
)
console = Console()
error_console = Console(stderr=True)


def _print_version(asked: bool) -> None:
    if asked:
        console.print(f"labsat {__version__}")
        raise typer.Exit()


@app.callback()
def _labsat(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print labsat's version and exit.")
    ] = False,
) -> None:
    """Hardware-in-the-loop control and sharpness-aware training for physical neural networks."""


BenchOption = Annotated[
    Path | None,
    typer.Option("--bench", "-b", help="Bench file (YAML). Default: the embedded simulated MRR bench."),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="LABSAT_DATA", help="Data directory (store, artifacts, simulator state)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

P = ParamSpec("P")
R = TypeVar("R")


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn labsat's own errors into one red line and exit code 2, never a traceback."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LabsatError as exc:
            error_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


@contextmanager
def bench_session(bench: Path | None, data: Path | None, *, hold: bool = False) -> Iterator[Bench]:
    """Open a bench for one command; ``hold`` leaves outputs set when the command succeeds.

    A bench another process owns (a service, another command) is refused with
    :class:`~labsat.ownership.BenchInUse` naming the holder: one line, exit 2, nothing written.
    """
    context = click.get_current_context(silent=True)
    announce(command=context.command_path if context is not None else None)
    opened = open_bench(bench or builtin_bench_path(), data_dir=data_dir(data))
    if hold:
        opened.hold_outputs()
    with opened:
        yield opened


def emit(data: Any, tables: Sequence[Table], as_json: bool) -> None:
    """Print ``data`` as JSON, or the rich tables."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=float) + "\n")
    else:
        for table in tables:
            console.print(table)
