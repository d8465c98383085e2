"""``labsat token create``: a new scoped token for the service's tokens file.

The service's tokens come from its tokens file (``<data>/tokens.yaml`` unless ``labsat serve --tokens``
names another; the first ``labsat serve`` writes one admin token there and prints it) and from
``LABSAT_TOKENS``. This command adds one token, stores only its SHA-256 and prints the token once.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from labsat.cli.app import DataDirOption, JsonOption, app, console, emit, user_errors
from labsat.cli.help import PlainHelpGroup
from labsat.cli.serve import TOKENS_FILE
from labsat.paths import data_dir as resolve_data_dir

token_app = typer.Typer(help="Service tokens: create scoped ones.", no_args_is_help=True, cls=PlainHelpGroup)
app.add_typer(token_app, name="token")


class ScopeChoice(StrEnum):
    READ = "read"
    OPERATE = "operate"
    ADMIN = "admin"


@token_app.command()
@user_errors
def create(
    scope: Annotated[
        ScopeChoice,
        typer.Option(help="read: look only; operate: also submit, control jobs, set channels, stop; admin: all."),
    ],
    name: Annotated[
        str | None, typer.Option(help="Who holds it (logs, job submitters). Default: the scope's name.")
    ] = None,
    tokens: Annotated[
        Path | None,
        typer.Option(
            "--tokens", envvar="LABSAT_TOKENS_FILE", help="Tokens file to add to. Default: <data>/tokens.yaml."
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a token of one scope to the service's tokens file and print it (once: the file keeps its hash only).

    A running service reads the file when it starts: restart it to admit the new token.
    """
    from labsat.api.auth import Scope, add_token

    path = tokens or resolve_data_dir(data_dir) / TOKENS_FILE
    holder = name or scope.value
    token = add_token(path, holder, Scope.parse(scope.value))
    if as_json:
        emit({"name": holder, "scope": scope.value, "token": token, "file": str(path)}, [], as_json)
        return
    console.print(f"added token {holder!r} (scope {scope.value}) to {path}; restart `labsat serve` to admit it:")
    console.print(f"  export LABSAT_TOKEN={token}", highlight=False, soft_wrap=True)
