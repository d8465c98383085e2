"""Shared pieces of the service tests: tokens, a calibrated data directory, a scripted job kind, servers.

Fixtures are defined under ``*_fixture`` names with ``name=`` set, so a test module imports the function
(``from service_helpers import engine_fixture``) and its tests still ask for ``engine``.

The ``steps`` kind writes one heater per step, reports progress and a metric, and can wait on a named
gate (checking in while it waits, so cancel and pause still reach it): tests use it to hold a bench for
exactly as long as they need, without training anything.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import BaseModel, Field

from labsat.api.app import create_app
from labsat.api.auth import Principal, Scope, TokenTable, digest
from labsat.bench import builtin_bench_path, open_bench
from labsat.calibration import CalibrationOptions, calibrate
from labsat.jobs.engine import Isolation, JobEngine
from labsat.jobs.kinds import JobContext, JobKind, register
from labsat.store import Store

TOKENS = {scope: f"{scope.label}-token-0123456789abcdef" for scope in Scope}
"""One token per scope; the token's name is its scope's label."""

QUICK = CalibrationOptions(sweep_points=48, heater_maps=10, validation_maps=4)
WAIT_S = 60.0
"""Upper bound of every wait in these tests."""

GATES: dict[str, threading.Event] = {}


def token_table(anonymous_read: bool = False) -> TokenTable:
    return TokenTable(
        {digest(token): Principal(scope.label, scope) for scope, token in TOKENS.items()}, anonymous_read=anonymous_read
    )


def auth(scope: Scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[scope]}"}


class StepsParams(BaseModel):
    steps: int = Field(3, ge=1)
    volts: float = 1.0
    gate: str | None = Field(None, description="Wait on GATES[gate] before step gate_at.")
    gate_at: int = 0


def run_steps(context: JobContext, params: StepsParams) -> dict[str, Any]:
    """Step k sets heater h0 to ``volts`` (even k) or ``volts / 2`` (odd k); a resumed job skips done steps."""
    first = int(context.memo.get("done", 0))
    for step in range(first, params.steps):
        if params.gate is not None and step == params.gate_at:
            gate = GATES.setdefault(params.gate, threading.Event())
            while not gate.wait(0.01):
                context.checkpoint()
        context.bench.set_channels({"heaters.h0": params.volts if step % 2 == 0 else params.volts / 2})
        context.remember(done=step + 1)
        context.progress(step + 1, params.steps, "steps")
        context.metric(step=step + 1, value=float(step * step))
    return {"steps": params.steps, "first": first}


register(JobKind("steps", StepsParams, run_steps, "Test kind: write a heater per step.", resumable=True))


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT_S, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture(scope="session", name="calibrated_template")
def calibrated_template_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding one quick calibration of the default bench (made once per session)."""
    root = tmp_path_factory.mktemp("calibrated")
    store = Store(root)
    with open_bench(builtin_bench_path(), data_dir=root) as bench:
        calibrate(bench, store, options=QUICK)
    store.close()
    return root


@pytest.fixture(name="calibrated")
def calibrated_fixture(data_dir: Path, calibrated_template: Path) -> Path:
    """This test's data directory, starting with the template's calibration and simulator state."""
    shutil.copytree(calibrated_template, data_dir, dirs_exist_ok=True)
    return data_dir


def new_engine(root: Path, isolation: Isolation = "thread") -> JobEngine:
    """An engine over the default bench with frequent progress reports; not started."""
    return JobEngine(Store(root), [builtin_bench_path()], progress_interval=0.05, isolation=isolation)


def running(engine: JobEngine) -> Iterator[JobEngine]:
    """``engine`` started, then closed when the fixture that yields from this ends."""
    engine.start()
    yield engine
    engine.close(timeout=WAIT_S)


@pytest.fixture(name="engine")
def engine_fixture(data_dir: Path) -> Iterator[JobEngine]:
    """A started engine over the default bench (no calibration), closed after the test."""
    yield from running(new_engine(data_dir))


@contextmanager
def serving(engine: JobEngine, tokens: TokenTable | None = None) -> Iterator[str]:
    """A real uvicorn server for an unstarted ``engine`` (the app starts and stops it) on 127.0.0.1, on an
    ephemeral port, in a thread; yields its URL."""
    config = uvicorn.Config(
        create_app(engine, tokens or token_table()),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), what="the server to start")
        assert server.started, "the server did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
