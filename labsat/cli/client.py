"""Client commands for a running service: ``labsat submit``, ``labsat jobs``, ``labsat watch``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from labsat.cli.app import JsonOption, app, console, emit, error_console, user_errors
from labsat.cli.results import result_table, value_text
from labsat.client import DEFAULT_URL, LabsatClient
from labsat.errors import LabsatError
from labsat.jobs.model import Job, JobState

UrlOption = Annotated[str, typer.Option("--url", envvar="LABSAT_URL", help="The service's address.")]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="LABSAT_TOKEN", help="Bearer token (read scope to look, operate to submit)."),
]


def _value(text: str) -> Any:
    """JSON where it parses (``5``, ``[16, 8]``, ``true``); a comma-separated text as a list of such values."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return [_value(part.strip()) for part in text.split(",") if part.strip()]
    return text


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs into a nested dict: values are JSON where they parse, lists where they hold commas
    (``models=ID1,ID2``), text otherwise; a key given again adds to a list (``-p models=ID1 -p models=ID2``);
    dots in a key nest (``options.sweep_points=48``)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise LabsatError(f"{item!r} is not KEY=VALUE")
        value = _value(text)
        *parents, leaf = key.split(".")
        node = params
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise LabsatError(f"{key!r}: {parent!r} is given both as a value and as a group")
        if leaf in node:
            value = [*_as_list(node[leaf]), *_as_list(value)]
        node[leaf] = value
    return params


def jobs_table(jobs: list[Job]) -> Table:
    table = Table(title="jobs", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    for column in ("id", "kind", "bench", "state", "progress", "created", "by"):
        table.add_column(column, no_wrap=column in ("id", "kind", "state", "created"), overflow="fold")
    for job in jobs:
        progress = job.progress
        done = ""
        if progress is not None:
            done = f"{progress.phase} {progress.done:g}" + (f"/{progress.total:g}" if progress.total else "")
        table.add_row(
            job.id,
            job.kind,
            job.bench,
            job.state,
            done,
            job.created.strftime("%m-%d %H:%M"),  # the year and seconds would push a table past 80 columns
            job.submitted_by or "",
        )
    return table


def _result_table(job: Job, url: str) -> Table:
    return result_table(f"{job.kind} job {job.id}: {job.state}", job.result or {}, base_url=url, error=job.error)


def follow_hint(job: Job) -> None:
    """How to follow a job that was just submitted (tables only: ``--json`` prints nothing but the JSON)."""
    console.print(f"follow it: labsat watch {job.id}   (stop it: labsat cancel {job.id})", highlight=False)


@app.command()
@user_errors
def submit(
    kind: Annotated[
        str, typer.Argument(help="calibrate, train, evaluate, deploy, sweep, relock or an installed kind.")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=VALUE",
            help="A job parameter (repeat), e.g. -p epochs=5. Lists: -p models=ID1,ID2 or -p models=ID1 -p "
            "models=ID2; dots nest (-p options.sweep_points=48).",
        ),
    ] = None,
    bench: Annotated[str | None, typer.Option(help="Bench name on the service (default: its only bench).")] = None,
    watch_it: Annotated[bool, typer.Option("--watch", help="Follow the job until it ends.")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a job to a running service."""
    with LabsatClient(url, token) as client:
        job = client.submit(kind, parse_params(param or []), bench=bench)
        if watch_it:
            _watch(client, url, job.id, as_json)
            return
    emit(job.model_dump(mode="json"), [jobs_table([job])], as_json)
    if not as_json:
        follow_hint(job)


@app.command()
@user_errors
def jobs(
    bench: Annotated[str | None, typer.Option(help="Only this bench's jobs.")] = None,
    state: Annotated[JobState | None, typer.Option(help="Only jobs in this state.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most jobs listed.")] = 20,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a service's jobs, newest first."""
    with LabsatClient(url, token) as client:
        listed = client.jobs(bench=bench, state=state, kind=kind, limit=limit)
    emit([job.model_dump(mode="json") for job in listed], [jobs_table(listed)], as_json)


@app.command()
@user_errors
def watch(
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="Job id.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a job live (progress bar from its event stream); exit code 0 only if it succeeds."""
    with LabsatClient(url, token) as client:
        _watch(client, url, job_id, as_json)


def _watch(client: LabsatClient, url: str, job_id: str, as_json: bool) -> None:
    """Follow the job until it ends; Ctrl-C only detaches (the job goes on on the service)."""
    try:
        _follow(client, job_id, as_json)
    except KeyboardInterrupt:
        error_console.print(
            f"detached from job {job_id}; it goes on on the service (follow it again: labsat watch {job_id}; "
            f"stop it: labsat cancel {job_id})",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    job = client.job(job_id)
    emit(job.model_dump(mode="json"), [_result_table(job, url)], as_json)
    if job.state is not JobState.SUCCEEDED:
        raise typer.Exit(1)


def _follow(client: LabsatClient, job_id: str, as_json: bool) -> None:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=as_json, transient=False) as progress:
        task = progress.add_task(job_id, total=None, status="")
        for event in client.stream(job_id):
            data = event.data
            if event.type == "progress":
                values = "  ".join(f"{k} {value_text(k, v)}" for k, v in data["values"].items())
                progress.update(
                    task,
                    description=data["phase"] or job_id,
                    completed=data["done"],
                    total=data["total"],
                    status=values,
                )
            elif event.type == "state":
                progress.update(task, status=data["state"])
            elif event.type == "log":
                progress.console.print(f"[dim]{data['message']}[/]")


@app.command(name="clear-fault")
@user_errors
def clear_fault(
    bench: Annotated[str, typer.Argument(metavar="BENCH", help="Bench name on the service.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Lift a bench's latched fault once you have inspected the bench (needs an admin token); writes nothing."""
    with LabsatClient(url, token) as client:
        result = client.clear_fault(bench)
    lifted = f"cleared: {result.cleared}" if result.cleared else "had no fault"
    table = Table(title=f"bench {result.bench}")
    table.add_column("fault")
    table.add_column("state")
    table.add_row(lifted, result.state)
    emit(result.model_dump(mode="json"), [table], as_json)
