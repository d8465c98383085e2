"""The service's documentation and error surface: local docs assets, documented errors, bounded job parameters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_helpers import auth, new_engine, token_table

from labsat.api.app import create_app
from labsat.api.auth import Scope


@pytest.fixture(name="client")
def client_fixture(data_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(new_engine(data_dir), token_table()), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_the_services_own_assets(client: TestClient, page: str) -> None:
    html = client.get(page).text
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)
    assert urls, html
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert "cdn" not in html.lower() and "fonts.googleapis" not in html
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 200 and len(answer.content) > 0, url


def test_every_guarded_route_documents_its_error_answers(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "ErrorResponse" in document["components"]["schemas"]
    operations = {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if path != "/api/health"
    }
    for (method, path), operation in operations.items():
        codes = set(operation["responses"])
        assert "401" in codes, (method, path)
        assert ("403" in codes) == (operation["x-labsat-scope"] != "read"), (method, path)
        if "{" in path or method != "GET":
            assert "404" in codes, (method, path)
        if method != "GET":
            assert {"409", "422"} <= codes, (method, path)
        for code in codes - {"200", "201", "204"}:
            schema = operation["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, code)


def test_errors_are_json_even_for_unknown_routes(client: TestClient) -> None:
    for answer in (
        client.get("/nowhere"),
        client.delete("/api/health"),
        client.get("/api/jobs"),
        client.get("/api/jobs/nope", headers=auth(Scope.READ)),
    ):
        assert answer.status_code >= 400 and isinstance(answer.json()["detail"], str | list), answer.text


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("train", {"hidden": [4096] * 10000}, ["body", "train", "params", "hidden"]),
        ("train", {"lr": "inf"}, ["body", "train", "params", "lr"]),
        ("train", {"epochs": 10**9}, ["body", "train", "params", "epochs"]),
        ("calibrate", {"options": {"repeats": 10**9}}, ["body", "calibrate", "params", "options", "repeats"]),
        ("evaluate", {"models": ["m"] * 1000}, ["body", "evaluate", "params", "models"]),
    ],
)
def test_oversized_job_parameters_are_refused_naming_the_field(
    client: TestClient, kind: str, params: dict[str, Any], field: list[str]
) -> None:
    answer = client.post("/api/jobs", json={"kind": kind, "params": params}, headers=auth(Scope.OPERATE))
    assert answer.status_code == 422, answer.text
    assert [item["loc"][: len(field)] for item in answer.json()["detail"]] == [field]
    assert client.get("/api/jobs", headers=auth(Scope.READ)).json() == []
