"""A Python client for the labsat REST service (``labsat serve``), over httpx.

::

    from labsat.client import LabsatClient

    with LabsatClient("http://127.0.0.1:8765", token="...") as lab:
        job = lab.submit("train", {"dataset": "iris", "epochs": 5})
        for event in lab.stream(job.id):          # Server-Sent Events, replayed then live
            print(event.type, event.data)
        print(lab.job(job.id).result)

Every error answer raises :class:`ApiError` with the status and the server's ``detail``. Responses are
parsed into the same pydantic models the server documents; importing this module needs neither
FastAPI nor torch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx
from pydantic import BaseModel, TypeAdapter

from labsat.api.schemas import (
    ArtifactFile,
    BenchDetail,
    BenchSummary,
    CalibrationSummary,
    ChannelSetResult,
    EmergencyStopResult,
    FaultCleared,
    Health,
    ModelInfo,
    Whoami,
)
from labsat.errors import LabsatError
from labsat.jobs.model import Job, JobEvent, JobState

DEFAULT_URL = "http://127.0.0.1:8765"


TOKEN_HINT = (
    "tokens come from the service's tokens file (<data>/tokens.yaml: the first `labsat serve` writes an admin "
    "token there and prints it; `labsat token create --scope read|operate|admin` adds scoped ones); pass it "
    "with --token or LABSAT_TOKEN"
)
"""What a 401 adds to its message: where a token comes from."""


class ApiError(LabsatError):
    """The service answered with an error status."""

    def __init__(self, status: int, detail: Any, method: str, path: str) -> None:
        self.status = status
        self.detail = detail
        hint = f" ({TOKEN_HINT})" if status == 401 else ""
        super().__init__(f"{method} {path}: {status}: {_describe(detail)}{hint}")


class LabsatClient:
    """Synchronous client; safe to use from one thread at a time (make one per thread)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=url.rstrip("/") + "/api", headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabsatClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- service and benches ------------------------------------------------------------------------

    def health(self) -> Health:
        return self._get(Health, "/health")

    def whoami(self) -> Whoami:
        return self._get(Whoami, "/whoami")

    def benches(self) -> list[BenchSummary]:
        return self._get(list[BenchSummary], "/benches")

    def bench(self, name: str) -> BenchDetail:
        return self._get(BenchDetail, f"/benches/{name}")

    def set_channels(self, bench: str, values: Mapping[str, float]) -> dict[str, float]:
        """Manual write through the guard (409 while a job holds the bench)."""
        response = self._request("PUT", f"/benches/{bench}/channels", json={"values": dict(values)})
        return ChannelSetResult.model_validate(response.json()).values

    def emergency_stop(self, bench: str) -> EmergencyStopResult:
        return EmergencyStopResult.model_validate(self._request("POST", f"/benches/{bench}/stop").json())

    def clear_fault(self, bench: str) -> FaultCleared:
        """Lift a bench's latched fault (admin token)."""
        return FaultCleared.model_validate(self._request("POST", f"/benches/{bench}/clear-fault").json())

    # -- jobs ---------------------------------------------------------------------------------------

    def submit(self, kind: str, params: Mapping[str, Any] | None = None, *, bench: str | None = None) -> Job:
        body = {"kind": kind, "bench": bench, "params": dict(params or {})}
        return Job.model_validate(self._request("POST", "/jobs", json=body).json())

    def jobs(
        self,
        *,
        bench: str | None = None,
        state: JobState | str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        query = {"bench": bench, "state": state, "kind": kind, "limit": limit}
        return self._get(list[Job], "/jobs", params={k: v for k, v in query.items() if v is not None})

    def job(self, job_id: str) -> Job:
        return self._get(Job, f"/jobs/{job_id}")

    def events(self, job_id: str, after: int = 0) -> list[JobEvent]:
        return self._get(list[JobEvent], f"/jobs/{job_id}/events", params={"after": after})

    def cancel(self, job_id: str) -> Job:
        return Job.model_validate(self._request("POST", f"/jobs/{job_id}/cancel").json())

    def pause(self, job_id: str) -> Job:
        return Job.model_validate(self._request("POST", f"/jobs/{job_id}/pause").json())

    def resume(self, job_id: str) -> Job:
        return Job.model_validate(self._request("POST", f"/jobs/{job_id}/resume").json())

    def delete_job(self, job_id: str) -> None:
        self._request("DELETE", f"/jobs/{job_id}")

    def stream(self, job_id: str, after: int = 0, *, timeout: float | None = None) -> Iterator[JobEvent]:
        """The job's events over SSE: those after ``after``, then live ones, until the job reaches a final state.

        A dropped connection is picked up again where it stopped (``Last-Event-ID``). ``timeout`` bounds the
        whole iteration: past it, :class:`TimeoutError` (the server pings every 15 s, so the bound holds even
        when a job is silent).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = after
        while True:
            read = None if deadline is None else max(0.1, deadline - time.monotonic())
            try:
                with self._http.stream(
                    "GET",
                    f"/jobs/{job_id}/stream",
                    params={"after": seen},
                    headers={"Accept": "text/event-stream"},
                    timeout=httpx.Timeout(self._http.timeout.connect, read=read),
                ) as response:
                    if response.is_error:
                        response.read()
                        raise _error(response)
                    for event in _parse_sse(response.iter_lines()):
                        seen = event.seq
                        yield event
                        _check(deadline)
                    return
            except (httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError):
                _check(deadline)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Follow the job until it ends; returns it in its final state."""
        for _ in self.stream(job_id, timeout=timeout):
            pass
        return self.job(job_id)

    # -- records and artifacts ----------------------------------------------------------------------

    def calibrations(self, bench: str | None = None) -> list[CalibrationSummary]:
        return self._get(list[CalibrationSummary], "/calibrations", params={"bench": bench} if bench else None)

    def calibration(self, calibration_id: str) -> dict[str, Any]:
        """The whole calibration record, as JSON."""
        return self._request("GET", f"/calibrations/{calibration_id}").json()

    def models(self, *, bench: str | None = None, method: str | None = None) -> list[ModelInfo]:
        query = {key: value for key, value in {"bench": bench, "method": method}.items() if value is not None}
        return self._get(list[ModelInfo], "/models", params=query)

    def model(self, model_id: str) -> ModelInfo:
        return self._get(ModelInfo, f"/models/{model_id}")

    def deploy(self, model_id: str, bench: str | None = None) -> Job:
        """Submit a deploy job: run the model on ``bench`` over its test split."""
        return Job.model_validate(self._request("POST", f"/models/{model_id}/deploy", json={"bench": bench}).json())

    def artifacts(self, kind: str, item_id: str) -> list[ArtifactFile]:
        return self._get(list[ArtifactFile], f"/artifacts/{kind}/{item_id}")

    def download(self, kind: str, item_id: str, path: str) -> bytes:
        return self._request("GET", f"/artifacts/{kind}/{item_id}/{path}").content

    # -- plumbing -----------------------------------------------------------------------------------

    def _get(self, model: Any, path: str, params: Mapping[str, Any] | None = None) -> Any:
        data = self._request("GET", path, params=params).json()
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(data)
        return TypeAdapter(model).validate_python(data)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise _error(response)
        return response


def _parse_sse(lines: Iterator[str]) -> Iterator[JobEvent]:
    """SSE wire format -> events: ``data:`` lines joined, dispatched at a blank line; comments skipped."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield JobEvent.model_validate_json("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError("the job did not end in time")


def _error(response: httpx.Response) -> ApiError:
    try:
        detail = response.json().get("detail", response.text)
    except (json.JSONDecodeError, AttributeError):
        detail = response.text
    return ApiError(response.status_code, detail, response.request.method, response.request.url.path)


def _describe(detail: Any) -> str:
    """FastAPI's list of validation errors as one line naming each field; anything else as text."""
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', []))}: {item.get('msg', '')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    return str(detail)
