"""Job kinds are plugins: one entry point in the ``labsat.jobs`` group, loaded by ``labsat serve``.

The toy kind (``tests/plugins/labsat_toy/jobs.py``) is installed the way pip installs a package's entry
points, as a ``dist-info`` on ``sys.path``; the service started by ``labsat serve`` then documents it and
runs it like one of labsat's own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from plugin_helpers import install_plugin
from typer.testing import CliRunner

from labsat.cli import app
from labsat.entrypoints import JOB_KINDS, entry_points_of
from labsat.jobs.kinds import UnknownKind, register_installed, registered, unregister

TOKEN = "operate-token-0123456789abcdef"
WAIT_S = 60.0


def _install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str) -> None:
    install_plugin(tmp_path / "site", monkeypatch, "labsat-toy-jobs", JOB_KINDS, entry)
    entry_points_of.cache_clear()


@pytest.fixture(name="forget")
def forget_fixture() -> Iterator[None]:
    yield
    unregister("toy_echo")
    entry_points_of.cache_clear()


def test_labsat_serve_offers_and_runs_an_installed_job_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forget: None
) -> None:
    _install(tmp_path, monkeypatch, "toy_echo = labsat_toy.jobs:ECHO")
    monkeypatch.setenv("LABSAT_TOKENS", f"op:operate:{TOKEN}")
    seen: dict[str, Any] = {}

    def serve_in_process(service: Any, **_: Any) -> None:  # stands in for uvicorn: the same app, in process
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with TestClient(service) as client:
            seen["schema"] = client.get("/openapi.json").json()["components"]["schemas"]
            job = client.post("/api/jobs", json={"kind": "toy_echo", "params": {"message": "hi"}}, headers=headers)
            assert job.status_code == 201, job.text
            deadline = time.monotonic() + WAIT_S
            while (state := client.get(f"/api/jobs/{job.json()['id']}", headers=headers).json())[
                "state"
            ] != "succeeded":
                assert time.monotonic() < deadline and state["state"] in ("queued", "running"), state
                time.sleep(0.05)
            seen["result"] = state["result"]

    monkeypatch.setattr("uvicorn.run", serve_in_process)
    served = CliRunner().invoke(app, ["serve", "--port", "0"])
    assert served.exit_code == 0, served.output
    assert "ToyEchoJobRequest" in seen["schema"] and seen["result"] == {"echo": "hi"}


def test_an_entry_point_that_names_no_job_kind_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forget: None
) -> None:
    _install(tmp_path, monkeypatch, "toy_echo = labsat_toy.jobs:EchoParams")
    with pytest.raises(UnknownKind, match=r"'toy_echo' .*labsat_toy\.jobs:EchoParams.* must name a JobKind"):
        register_installed()
    assert "toy_echo" not in registered()
