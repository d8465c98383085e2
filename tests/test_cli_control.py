"""The job-control, model and token commands against a real service; id prefixes; result tables; list params."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch
import yaml
from rich.console import Console
from service_helpers import GATES, TOKENS, WAIT_S, new_engine, serving, wait_for
from typer.testing import CliRunner

from labsat.api.auth import Scope, TokenTable
from labsat.cli import app
from labsat.cli.client import jobs_table, parse_params
from labsat.cli.results import result_table
from labsat.client import LabsatClient
from labsat.jobs.model import Job, JobEvent, JobState
from labsat.store import Store

runner = CliRunner()


@pytest.fixture(name="scripted_ids")
def scripted_ids_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Job ids ``abc1000``, ``abc2000``, ``abd3000``...: two share the prefix ``abc``, one is alone under ``abd``."""
    ids = itertools.chain(["abc1000", "abc2000", "abd3000"], (f"zz{n:05d}" for n in itertools.count()))
    monkeypatch.setattr("labsat.jobs.journal.new_id", lambda: next(ids))
    yield


def test_parameters_take_lists_by_commas_or_by_repetition() -> None:
    assert parse_params(["models=a1,b2", "hidden=16,8", "x=1"]) == {"models": ["a1", "b2"], "hidden": [16, 8], "x": 1}
    assert parse_params(["models=a1", "models=b2", "models=c3,d4"]) == {"models": ["a1", "b2", "c3", "d4"]}
    assert parse_params(["method=pat+sat", "hidden=[16, 8]"]) == {"method": "pat+sat", "hidden": [16, 8]}


def test_a_result_reads_as_percents_urls_and_short_numbers_at_80_columns() -> None:
    result = {
        "model": "0123456789ab",
        "test_accuracy_device": 0.8731250000000001,
        "final_loss": 0.123456789012345678,
        "queries": {"forwards": 1200, "backwards": 0},
        "confusion": {"matrix": [[1, 0], [0, 1]], "accuracy": 1.0},
        "points": list(range(50)),
        "artifacts": ["models/0123456789ab/controls.pt"],
    }
    table = result_table("train job x: succeeded", result, base_url="http://127.0.0.1:8765")
    wide = Console(width=200, record=True)
    wide.print(table)
    assert "http://127.0.0.1:8765/api/artifacts/models/0123456789ab/controls.pt" in wide.export_text()
    console = Console(width=80, record=True)
    console.print(table)
    text = console.export_text()
    assert "87.3%" in text and "0.1235" in text and "100.0%" in text
    assert "queries.forwards" in text and "2×2 matrix (--json)" in text and "50 entries (--json)" in text
    assert "0.87312" not in text and "[[" not in text and "{" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_jobs_are_controlled_by_unique_prefix_and_an_ambiguous_one_lists_candidates(
    data_dir: Path, scripted_ids: None
) -> None:
    GATES["control"] = threading.Event()
    with serving(new_engine(data_dir)) as url, LabsatClient(url, TOKENS[Scope.OPERATE], timeout=WAIT_S) as lab:
        common = ["--url", url, "--token", TOKENS[Scope.OPERATE]]
        running = lab.submit("steps", {"steps": 2, "gate": "control", "gate_at": 1})
        queued = lab.submit("steps", {"steps": 1})
        alone = lab.submit("steps", {"steps": 1})
        assert (running.id, queued.id, alone.id) == ("abc1000", "abc2000", "abd3000")
        wait_for(lambda: lab.job("abc1").state is JobState.RUNNING, what="the job to start")

        ambiguous = runner.invoke(app, ["cancel", "abc", *common])
        assert ambiguous.exit_code == 2, ambiguous.output
        assert "ambiguous" in ambiguous.stderr and "abc1000" in ambiguous.stderr and "abc2000" in ambiguous.stderr
        assert lab.job("abc2000").state is JobState.QUEUED  # nothing was cancelled

        cancelled = runner.invoke(app, ["cancel", "abd", "--json", *common])
        assert cancelled.exit_code == 0, cancelled.output
        assert json.loads(cancelled.stdout)["id"] == "abd3000" and lab.job("abd3000").state is JobState.CANCELLED

        paused = runner.invoke(app, ["pause", "abc1", *common])
        assert paused.exit_code == 0, paused.output
        wait_for(lambda: lab.job("abc1000").state is JobState.PAUSED, what="the pause")
        GATES["control"].set()
        resumed = runner.invoke(app, ["resume", "abc1", *common])
        assert resumed.exit_code == 0, resumed.output
        assert lab.wait("abc1000", timeout=WAIT_S).state is JobState.SUCCEEDED
        watched = runner.invoke(app, ["watch", "abc2", *common])
        assert watched.exit_code == 0 and "succeeded" in watched.stdout, watched.output

        unknown = runner.invoke(app, ["cancel", "fff", *common])
        assert unknown.exit_code == 2 and "404" in unknown.stderr and "no job 'fff'" in unknown.stderr


def test_emergency_stop_command_cancels_the_benchs_jobs(data_dir: Path, scripted_ids: None) -> None:
    GATES["stop"] = threading.Event()
    with serving(new_engine(data_dir)) as url, LabsatClient(url, TOKENS[Scope.OPERATE], timeout=WAIT_S) as lab:
        job = lab.submit("steps", {"steps": 2, "gate": "stop", "gate_at": 1})
        wait_for(lambda: lab.job(job.id).state is JobState.RUNNING, what="the job to start")
        stopped = runner.invoke(app, ["stop", "sim-mrr", "--url", url, "--token", TOKENS[Scope.OPERATE]])
        assert stopped.exit_code == 0, stopped.output
        assert "emergency stop" in stopped.stdout and job.id in stopped.stdout
        assert lab.wait(job.id, timeout=WAIT_S).state is JobState.CANCELLED


def test_models_list_with_percent_accuracy_and_deploy_takes_a_prefix(data_dir: Path) -> None:
    store = Store(data_dir)
    model_id = store.save_model(
        "sim-mrr", "pat+sat", {"theta": torch.zeros(2)}, {"dataset": "digits", "test_accuracy_device": 0.9123456}
    )
    store.close()
    with serving(new_engine(data_dir)) as url:
        common = ["--url", url, "--token", TOKENS[Scope.OPERATE]]
        listed = runner.invoke(app, ["models", *common], env={"COLUMNS": "80"})
        assert listed.exit_code == 0, listed.output
        assert model_id in listed.stdout and "91.2%" in listed.stdout and "0.912345" not in listed.stdout
        assert max(len(line) for line in listed.stdout.splitlines()) <= 80
        deployed = runner.invoke(app, ["deploy", model_id[:6], *common])
        assert deployed.exit_code == 0, deployed.output
        assert "labsat watch" in deployed.stdout
        with LabsatClient(url, TOKENS[Scope.OPERATE]) as lab:
            (job,) = lab.jobs(kind="deploy")
        assert job.params == {"model": model_id}


def test_submit_says_how_to_follow_and_watch_detaches_on_ctrl_c(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    GATES["detach"] = threading.Event()
    with serving(new_engine(data_dir)) as url, LabsatClient(url, TOKENS[Scope.OPERATE], timeout=WAIT_S) as lab:
        common = ["--url", url, "--token", TOKENS[Scope.OPERATE]]
        submitted = runner.invoke(
            app, ["submit", "steps", "-p", "steps=2", "-p", "gate=detach", "-p", "gate_at=1", *common]
        )
        assert submitted.exit_code == 0, submitted.output
        (job,) = lab.jobs()
        assert f"labsat watch {job.id}" in submitted.stdout
        wait_for(lambda: lab.job(job.id).state is JobState.RUNNING, what="the job to start")

        def interrupted(self: LabsatClient, job_id: str, after: int = 0, **_: object) -> Iterator[JobEvent]:
            raise KeyboardInterrupt
            yield  # a generator, like the real stream

        with monkeypatch.context() as patch:
            patch.setattr(LabsatClient, "stream", interrupted)
            watched = runner.invoke(app, ["watch", job.id, *common])
        assert watched.exit_code == 130
        assert "detached" in watched.stderr and "goes on" in watched.stderr
        assert lab.job(job.id).state is JobState.RUNNING
        GATES["detach"].set()
        assert lab.wait(job.id, timeout=WAIT_S).state is JobState.SUCCEEDED


def test_a_401_says_where_tokens_come_from(data_dir: Path) -> None:
    with serving(new_engine(data_dir)) as url:
        refused = runner.invoke(app, ["jobs", "--url", url])
    assert refused.exit_code == 2
    message = " ".join(refused.stderr.split())
    assert "401" in message and "tokens.yaml" in message and "labsat token create" in message


def test_token_create_adds_a_scoped_token_whose_secret_the_file_does_not_hold(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    made = runner.invoke(
        app, ["token", "create", "--scope", "read", "--name", "viewer", "--tokens", str(path), "--json"]
    )
    assert made.exit_code == 0, made.output
    token = json.loads(made.stdout)["token"]
    second = runner.invoke(app, ["token", "create", "--scope", "operate", "--tokens", str(path)])
    assert second.exit_code == 0 and "export LABSAT_TOKEN=" in second.stdout
    table = TokenTable.load(path)
    principal = table.lookup(token)
    assert principal is not None and (principal.name, principal.scope) == ("viewer", Scope.READ)
    assert token not in path.read_text() and len(yaml.safe_load(path.read_text())["tokens"]) == 2
    again = runner.invoke(app, ["token", "create", "--scope", "admin", "--name", "viewer", "--tokens", str(path)])
    assert again.exit_code == 2 and "already has a token named 'viewer'" in " ".join(again.stderr.split())


def test_the_jobs_table_reads_whole_at_80_columns() -> None:
    job = Job.model_validate(
        {
            "id": "0123456789ab",
            "kind": "calibrate",
            "bench": "sim-mrr",
            "state": "succeeded",
            "params": {},
            "attempt": 1,
            "created": datetime(2026, 12, 3, 17, 18, tzinfo=UTC),
            "progress": {"phase": "rings", "done": 12, "total": 48, "values": {}},
            "submitted_by": "operate",
        }
    )
    console = Console(width=80, record=True)
    console.print(jobs_table([job]))
    row = next(line for line in console.export_text().splitlines() if "0123456789ab" in line)
    assert row.split() == [
        "0123456789ab",
        "calibrate",
        "sim-mrr",
        "succeeded",
        "rings",
        "12/48",
        "12-03",
        "17:18",
        "operate",
    ]
