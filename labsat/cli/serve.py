"""``labsat serve``: the REST service for one bench PC (FastAPI on uvicorn)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from labsat.cli.app import DataDirOption, app, console, error_console, user_errors
from labsat.paths import data_dir as resolve_data_dir

DEFAULT_PORT = 8765
SWITCH_INTERVAL_S = 0.0005
"""Interpreter thread switch interval while serving. Request handling and the bench workers share one
interpreter lock; at Python's default (5 ms) a worker that released the lock for a moment (inside a torch
op) can wait up to 5 ms to get it back from an event loop busy with a burst of requests, far longer than
the requests themselves take. A short interval bounds that wait; it costs nothing while only one thread
wants the lock."""
TOKENS_FILE = "tokens.yaml"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@app.command()
@user_errors
def serve(
    bench: Annotated[
        list[Path] | None,
        typer.Option(
            "--bench", "-b", help="Bench file to serve (repeat for several). Default: the simulated MRR bench."
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on. Anything but loopback exposes the lab.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")] = DEFAULT_PORT,
    tokens: Annotated[
        Path | None,
        typer.Option(
            "--tokens",
            envvar="LABSAT_TOKENS_FILE",
            help="Tokens file (YAML; see labsat.api.auth). Default: <data>/tokens.yaml, created with one admin "
            "token on first start. LABSAT_TOKENS adds name:scope:token entries.",
        ),
    ] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (off by default: polling clients flood it).")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Serve the benches over REST: jobs queue per bench, one worker owns each bench's hardware.

    On start, jobs a previous service left running become 'interrupted' and every bench goes to its safe
    state; SIGINT/SIGTERM interrupt running jobs at their next checkpoint and leave every bench safe.
    """
    import uvicorn  # imported here: the other commands need neither uvicorn nor the web stack

    from labsat.api.app import create_app
    from labsat.api.auth import TokenTable, write_admin_token
    from labsat.bench import builtin_bench_path
    from labsat.jobs.engine import JobEngine
    from labsat.store import Store

    root = resolve_data_dir(data_dir)
    default_tokens = root / TOKENS_FILE
    tokens_file = tokens or (default_tokens if default_tokens.exists() else None)
    table = TokenTable.from_environment(tokens_file)
    if len(table) == 0 and tokens is None:
        token = write_admin_token(default_tokens)
        table = TokenTable.from_environment(default_tokens)
        console.print(f"no tokens were configured: created an admin token in {default_tokens} (mode 600):")
        console.print(f"  export LABSAT_TOKEN={token}", highlight=False, soft_wrap=True)
    if host not in LOCAL_HOSTS:
        error_console.print(
            f"[bold yellow]warning:[/] listening on {host}: other machines can reach the bench; "
            "tokens travel in clear text unless a TLS proxy sits in front"
        )
    engine = JobEngine(Store(root), bench or [builtin_bench_path()])
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    uvicorn.run(
        create_app(engine, table),
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        timeout_graceful_shutdown=5,
    )
