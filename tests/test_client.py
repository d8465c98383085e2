"""``labsat.client`` and the client commands (``submit``, ``jobs``, ``watch``) against a real server."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest
from service_helpers import GATES, TOKENS, WAIT_S, new_engine, serving, wait_for
from typer.testing import CliRunner

from labsat.api.auth import Scope, TokenTable, write_admin_token
from labsat.cli import app
from labsat.cli.client import parse_params
from labsat.client import ApiError, LabsatClient, _parse_sse
from labsat.errors import LabsatError
from labsat.jobs.model import JobState

runner = CliRunner()


def test_sse_parsing_joins_data_lines_and_skips_comments() -> None:
    event = '{"seq": 3, "time": "2026-01-01T00:00:00Z", "type": "log", "data": {"message": "a"}}'
    lines = [": ping", "", "event: log", "id: 3", f"data: {event[:10]}", f"data:{event[10:]}", "", "retry: 5"]
    (parsed,) = _parse_sse(iter(lines))
    assert (parsed.seq, parsed.type, parsed.data) == (3, "log", {"message": "a"})


def test_parameters_parse_as_json_and_nest_on_dots() -> None:
    assert parse_params(["epochs=5", "hidden=[16, 8]", "method=pat+sat", "options.sweep_points=48"]) == {
        "epochs": 5,
        "hidden": [16, 8],
        "method": "pat+sat",
        "options": {"sweep_points": 48},
    }
    with pytest.raises(LabsatError, match="KEY=VALUE"):
        parse_params(["epochs"])


def test_the_client_drives_jobs_and_reports_errors_by_field(data_dir: Path) -> None:
    GATES["client"] = threading.Event()
    with serving(new_engine(data_dir)) as url, LabsatClient(url, TOKENS[Scope.OPERATE], timeout=WAIT_S) as lab:
        assert lab.whoami().scope == "operate" and [b.name for b in lab.benches()] == ["sim-mrr"]
        with pytest.raises(ApiError, match=r"body\.steps\.params\.steps: Input should be greater than or equal to 1"):
            lab.submit("steps", {"steps": 0})
        with pytest.raises(ApiError) as missing:
            lab.job("nope")
        assert missing.value.status == 404
        job = lab.submit("steps", {"steps": 2, "gate": "client", "gate_at": 1})
        wait_for(lambda: lab.job(job.id).state is JobState.RUNNING, what="the job to start")
        assert lab.pause(job.id).id == job.id
        wait_for(lambda: lab.job(job.id).state is JobState.PAUSED, what="the pause")
        GATES["client"].set()
        lab.resume(job.id)
        assert lab.wait(job.id, timeout=WAIT_S).result == {"steps": 2, "first": 0}
        assert [e.type for e in lab.events(job.id, after=1)][:1] == ["state"]
        assert [j.id for j in lab.jobs(state="succeeded")] == [job.id]
        with pytest.raises(ApiError) as conflict:
            lab.cancel(job.id)
        assert conflict.value.status == 409
        with pytest.raises(ApiError) as forbidden:
            lab.delete_job(job.id)
        assert forbidden.value.status == 403
        with LabsatClient(url, TOKENS[Scope.ADMIN]) as admin:
            admin.delete_job(job.id)
        assert lab.jobs() == []


def test_submit_jobs_and_watch_commands(data_dir: Path) -> None:
    with serving(new_engine(data_dir)) as url:
        common = ["--url", url, "--token", TOKENS[Scope.OPERATE]]
        submitted = runner.invoke(app, ["submit", "steps", "-p", "steps=2", "--json", *common])
        assert submitted.exit_code == 0, submitted.output
        job = json.loads(submitted.stdout)
        watched = runner.invoke(app, ["watch", job["id"], *common])
        assert watched.exit_code == 0, watched.output
        assert "succeeded" in watched.stdout and "steps" in watched.stdout
        listed = runner.invoke(app, ["jobs", "--json", *common])
        assert [item["id"] for item in json.loads(listed.stdout)] == [job["id"]]
        failing = runner.invoke(app, ["submit", "steps", "-p", "volts=99", "--watch", *common])
        assert failing.exit_code == 1 and "refused" in failing.stdout
        refused = runner.invoke(app, ["submit", "steps", "-p", "steps=zero", *common])
        assert refused.exit_code == 2 and "params.steps" in refused.stderr
        no_token = runner.invoke(app, ["jobs", "--url", url])
        assert no_token.exit_code == 2 and "401" in no_token.stderr


def test_a_fresh_service_gets_an_admin_token_only_its_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    token = write_admin_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    principal = TokenTable.load(path).lookup(token)
    assert principal is not None and principal.scope is Scope.ADMIN
