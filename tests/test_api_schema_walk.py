"""A property-based walk of the service's OpenAPI document (schemathesis): no 500s, no answer outside the schema.

Every operation gets a few generated requests, valid and invalid, with an admin token, against the app in
process over the simulated bench. Jobs are accepted and stored but never started (the workers' queue is
a no-op here), so a generated ``train`` job cannot keep the CPUs busy and a stream never waits on one;
the stream itself is left out (an SSE answer has no end for the walk to read while its job is unfinished).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service_helpers import auth, new_engine, token_table

from labsat.api.app import create_app
from labsat.api.auth import Scope
from labsat.jobs.engine import JobEngine
from labsat.jobs.worker import BenchWorker

EXAMPLES = 12
"""Generated requests per operation: enough to reach every error branch of a route, few enough for CI."""


@pytest.fixture(name="app")
def app_fixture(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    monkeypatch.setattr(BenchWorker, "enqueue", lambda self, job_id: None)
    app = create_app(new_engine(data_dir), token_table())
    with TestClient(app):  # runs the app's start-up: the engine and its benches
        yield app


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _known_ids(app: FastAPI) -> dict[str, str]:
    """Path parameters that name something the service holds: a bench, a stored job and model."""
    engine: JobEngine = app.state.engine
    model = engine.store.save_model("sim-mrr", "bp", {"theta": torch.zeros(2)}, {"dataset": "digits"})
    job = engine.submit("steps", None, {"steps": 1}, "walk")
    return {"bench": "sim-mrr", "job_id": job.id, "model_id": model, "kind": "models", "item_id": model}


def _cases(operation: APIOperation, known: dict[str, str]) -> st.SearchStrategy[Case]:
    """Valid and invalid requests with random ids, and valid ones naming what the service holds."""
    names = {parameter.name for parameter in operation.path_parameters}
    real = {name: value for name, value in known.items() if name in names}
    strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
    if real:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real))
    return st.one_of(strategies)


def test_no_operation_answers_500_or_outside_its_schema(app: FastAPI) -> None:
    api = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex=r"/stream$")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 20, [operation.label for operation in operations]
    known = _known_ids(app)
    for operation in operations:

        @given(case=_cases(operation, known))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def walk(case: Case) -> None:
            case.call_and_validate(headers=auth(Scope.ADMIN), checks=CHECKS)

        walk()
