"""``labsat serve``: the REST service for one bench PC (FastAPI on uvicorn)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from labsat.cli.app import DataDirOption, app, console, error_console, user_errors
from labsat.ownership import announce
from labsat.paths import data_dir as resolve_data_dir

if TYPE_CHECKING:
    from labsat.jobs.engine import JobEngine

DEFAULT_PORT = 8765
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
    from labsat.jobs.kinds import register_installed
    from labsat.store import Store

    register_installed()  # plugin job kinds, before the app builds its submission schema

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
    engine = JobEngine(Store(root), bench or [builtin_bench_path()], isolation="process")
    announce(command="labsat serve", url=_local_url(host, port))  # named in the benches' owner records
    _start_off_the_main_thread(engine)
    try:
        uvicorn.run(
            create_app(engine, table),
            host=host,
            port=port,
            log_level="info",
            access_log=access_log,
            timeout_graceful_shutdown=5,
        )
    finally:
        engine.close()  # already done by the app's shutdown, unless uvicorn never got that far (port taken)


def _local_url(host: str, port: int) -> str | None:
    """Where a command on this machine reaches the service (None: not known before it listens, port 0)."""
    if port == 0:
        return None
    local = "127.0.0.1" if host in ("0.0.0.0", "::", *LOCAL_HOSTS) else host
    return f"http://{f'[{local}]' if ':' in local else local}:{port}"


def _start_off_the_main_thread(engine: JobEngine) -> None:
    """Start the engine before the web server, in a thread of its own as the app's start-up would.

    Started here, a bench file that does not load or a bench that does not open is a :class:`LabsatError`
    of this command (one line, exit 2) rather than a failed application start-up (a traceback, exit 3).
    Off the main thread, so the process-wide signal hooks of :mod:`labsat.safety` stay off uvicorn's.
    """
    failures: list[BaseException] = []

    def start() -> None:
        try:
            engine.start()
        except BaseException as exc:  # handed to the calling thread, which reports it
            failures.append(exc)

    thread = threading.Thread(target=start, name="labsat-engine-start")
    thread.start()
    thread.join()
    if failures:
        raise failures[0]
