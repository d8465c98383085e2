"""The REST app in-process: every write needs the right token, malformed input is a 422 that names the field
and writes nothing, tokens load from file and environment, artifacts cannot be escaped."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import TOKENS, auth, new_engine, token_table

from labsat.api.app import create_app
from labsat.api.auth import Scope, TokenError, TokenTable
from labsat.api.jobs import _event_id, job_request_type
from labsat.jobs.engine import JobEngine

WRITES = ("post", "put", "patch", "delete")


@pytest.fixture(name="served")
def served_fixture(data_dir: Path) -> Iterator[tuple[TestClient, JobEngine]]:
    engine = new_engine(data_dir)
    with TestClient(create_app(engine, token_table())) as client:
        yield client, engine


def _history(engine: JobEngine) -> int:
    """Writes the simulated instruments received (below the guard)."""
    bench = engine.worker("sim-mrr").bench
    return sum(len(source._device.history) for source in bench.sources.values())


def test_no_write_endpoint_answers_without_a_token_of_its_scope(served: tuple[TestClient, JobEngine]) -> None:
    client, engine = served
    spec = client.get("/openapi.json").json()
    operations = [(method, path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    writes = [(method, path, op) for method, path, op in operations if method in WRITES]
    assert len(writes) >= 8
    before = _history(engine)
    for method, path, operation in writes:
        url = re.sub(r"\{[^}]+\}", "x", path)
        required = Scope.parse(operation["x-labsat-scope"])
        assert required >= Scope.OPERATE, f"{method} {path} is writable with a read token"
        assert client.request(method, url).status_code == 401, f"{method} {path} without a token"
        bad = client.request(method, url, headers={"Authorization": "Bearer not-a-labsat-token-at-all"})
        assert bad.status_code == 401, f"{method} {path} with an unknown token"
        for scope in Scope:
            if scope < required:
                answer = client.request(method, url, headers=auth(scope), json={})
                assert answer.status_code == 403, f"{method} {path} with a {scope.label} token"
                assert f"needs {required.label}" in answer.json()["detail"]
    assert _history(engine) == before and client.get("/api/jobs", headers=auth(Scope.READ)).json() == []
    assert any(op["x-labsat-scope"] == "admin" for _, _, op in writes)
    for _, path, operation in [item for item in operations if item[0] == "get"]:  # reads need a token too
        if path != "/api/health":
            assert operation["x-labsat-scope"] == "read"
            assert client.get(re.sub(r"\{[^}]+\}", "x", path)).status_code == 401, path


def test_malformed_requests_get_422_naming_the_field_and_write_nothing(served: tuple[TestClient, JobEngine]) -> None:
    client, engine = served
    operate = auth(Scope.OPERATE)
    before = _history(engine)
    cases = [
        ("post", "/api/jobs", {"kind": "train", "params": {"epochs": "many"}}, "epochs"),
        ("post", "/api/jobs", {"kind": "train", "params": {"epochs": 0}}, "epochs"),
        ("post", "/api/jobs", {"kind": "train", "params": {"method": "sam"}}, "method"),
        ("post", "/api/jobs", {"kind": "train", "params": {"method": "pat", "ascent": "fd"}}, "ascent"),
        ("post", "/api/jobs", {"kind": "train", "params": {"dataset": "../../etc/passwd"}}, "dataset"),
        ("post", "/api/jobs", {"kind": "train", "params": {"learning_rate": 0.1}}, "learning_rate"),
        ("post", "/api/jobs", {"kind": "bake", "params": {}}, "kind"),
        ("post", "/api/jobs", {"kind": "calibrate", "params": {"options": {"kernel_size": 4}}}, "kernel_size"),
        ("post", "/api/jobs", {"kind": "calibrate", "params": {"options": {"repeats": 10**9}}}, "repeats"),
        ("post", "/api/jobs", {"kind": "train", "params": {"hidden": [4096] * 10000}}, "hidden"),
        ("put", "/api/benches/sim-mrr/channels", {"values": {"heaters.h0": "hot"}}, "heaters.h0"),
        ("put", "/api/benches/sim-mrr/channels", {"values": {}}, "values"),
        ("put", "/api/benches/sim-mrr/channels", {"values": {"heaters.h0": 99.0}}, "heaters.h0"),
        ("put", "/api/benches/sim-mrr/channels", {"values": {"heaters.h0": 1.0, "heaters.h1": 5}}, "heaters.h1"),
        ("put", "/api/benches/sim-mrr/channels", {"values": {"heaters.nope": 1.0}}, "values"),
    ]
    for method, url, body, field in cases:
        answer = client.request(method, url, json=body, headers=operate)
        assert answer.status_code == 422, (body, answer.text)
        detail = answer.json()["detail"]
        named = [item for item in detail if field in [str(part) for part in item["loc"]] or f"'{field}'" in item["msg"]]
        assert named, (body, detail)
    assert _history(engine) == before, "a refused request reached an instrument"
    assert client.get("/api/jobs", headers=operate).json() == []
    assert client.put("/api/benches/nope/channels", json={"values": {"a.b": 1}}, headers=operate).status_code == 404


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/jobs", b'{"kind": "train", "params": {"lr": Infinity}}', "lr"),
        ("/api/jobs", b'{"kind": "train", "params": {"rho": NaN, "epochs": "x"}}', "rho"),
        ("/api/benches/sim-mrr/channels", b'{"values": {"heaters.h0": -Infinity}}', "heaters.h0"),
    ],
)
def test_non_finite_numbers_get_a_422_not_a_500(
    served: tuple[TestClient, JobEngine], url: str, body: bytes, field: str
) -> None:
    """Python's JSON reader takes NaN and Infinity; the 422 that refuses them must still render as JSON."""
    client, engine = served
    before = _history(engine)
    method = "put" if url.endswith("/channels") else "post"
    headers = {**auth(Scope.OPERATE), "content-type": "application/json"}
    answer = client.request(method, url, content=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert any(field in [str(part) for part in item["loc"]] for item in answer.json()["detail"])
    assert _history(engine) == before


def test_manual_set_and_bench_description(served: tuple[TestClient, JobEngine]) -> None:
    client, _ = served
    body = {"values": {"heaters.h2": 1.5}}
    answer = client.put("/api/benches/sim-mrr/channels", json=body, headers=auth(Scope.OPERATE))
    assert answer.status_code == 200 and answer.json()["values"] == {"heaters.h2": 1.5}
    bench = client.get("/api/benches/sim-mrr", headers=auth(Scope.READ)).json()
    assert bench["state"] == "idle" and bench["live"] is True
    heaters = {device["name"]: device for device in bench["devices"]}["heaters"]
    h2 = heaters["channels"][2]
    assert (h2["name"], h2["max_v"], h2["safe_v"]) == ("h2", 4.0, 0.0)
    assert h2["present_v"] == pytest.approx(1.5, abs=1e-3) and h2["present_mw"] == pytest.approx(2.25, abs=1e-2)
    assert client.get("/api/whoami", headers=auth(Scope.ADMIN)).json() == {"name": "admin", "scope": "admin"}
    assert client.get("/api/health").json()["status"] == "ok"


def test_artifact_paths_cannot_leave_their_folder(served: tuple[TestClient, JobEngine], data_dir: Path) -> None:
    client, _ = served
    folder = data_dir / "artifacts" / "jobs" / "abc"
    folder.mkdir(parents=True)
    (folder / "plot.png").write_bytes(b"png")
    (data_dir / "secret.txt").write_text("launch codes")
    (folder / "link.txt").symlink_to(data_dir / "secret.txt")
    read = auth(Scope.READ)
    assert client.get("/api/artifacts/jobs/abc/plot.png", headers=read).content == b"png"
    listing = client.get("/api/artifacts/jobs/abc", headers=read).json()
    assert {entry["path"] for entry in listing} == {"plot.png"}  # the link out of the tree is not listed
    for path in (
        "/api/artifacts/jobs/abc/plot%00.png",
        "/api/artifacts/jobs/abc/../../../secret.txt",
        "/api/artifacts/jobs/abc/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/api/artifacts/jobs/abc/link.txt",
        "/api/artifacts/jobs/abc/.hidden",
        "/api/artifacts/jobs/%2e%2e/abc/plot.png",
        "/api/artifacts/store/abc/plot.png",
    ):
        answer = client.get(path, headers=read)
        assert answer.status_code in (404, 422), path
        assert b"launch codes" not in answer.content


def test_tokens_load_from_a_file_and_the_environment(tmp_path: Path) -> None:
    hashed = "another-token-0123456789"
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "anonymous_read: true\n"
        "tokens:\n"
        f"  - {{name: alice, scope: operate, token: {TOKENS[Scope.OPERATE]}}}\n"
        f"  - {{name: bob, scope: admin, sha256: {hashlib.sha256(hashed.encode()).hexdigest()}}}\n"
    )
    table = TokenTable.load(path, "carol:read:carol-token-0123456789")
    assert table.anonymous_read and len(table) == 3
    assert (table.lookup(TOKENS[Scope.OPERATE]).name, table.lookup(hashed).scope) == ("alice", Scope.ADMIN)
    assert table.lookup("carol-token-0123456789").scope is Scope.READ
    assert table.lookup("carol") is None
    for bad, message in [
        ("tokens:\n  - {name: x, scope: read}\n", "exactly one of"),
        ("tokens:\n  - {name: x, scope: root, token: 0123456789abcdefgh}\n", "unknown scope"),
        ("tokens:\n  - {name: x, scope: read, token: short}\n", "tokens.0.token"),
    ]:
        path.write_text(bad)
        with pytest.raises(TokenError, match=message):
            TokenTable.load(path)
    with pytest.raises(TokenError, match="name:scope:token"):
        TokenTable.load(None, "just-a-token")


def test_anonymous_reads_only_when_configured(data_dir: Path) -> None:
    with TestClient(create_app(new_engine(data_dir), token_table(anonymous_read=True))) as client:
        assert client.get("/api/jobs").status_code == 200
        assert client.post("/api/benches/sim-mrr/stop").status_code == 401


def test_the_submission_schema_lists_every_kind() -> None:
    kinds = {variant.model_fields["kind"].annotation.__args__[0] for variant in job_request_type().__origin__.__args__}
    assert {"calibrate", "train", "deploy"} <= kinds


def test_a_tokens_file_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_bytes(b"tokens: [\xe9]")
    with pytest.raises(TokenError, match=r"cannot read tokens file .*tokens\.yaml: 'utf-8' codec"):
        TokenTable.load(path)


def test_event_numbers_out_of_range_are_a_422_and_junk_last_event_ids_are_ignored(
    served: tuple[TestClient, JobEngine],
) -> None:
    client, engine = served
    read = auth(Scope.READ)
    job = engine.submit("steps", None, {"steps": 1})
    for url in (f"/api/jobs/{job.id}/events", f"/api/jobs/{job.id}/stream"):
        answer = client.get(url, params={"after": 2**63}, headers=read)
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"][-1] == "after", answer.text
    assert [_event_id(header) for header in (None, "", "12", "abc", "²", "9" * 40)] == [0, 0, 12, 0, 0, 0]
