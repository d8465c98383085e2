"""The app factory: routes, token table, error mapping, and the engine's life inside the app's.

Starting the app starts the engine (lock the data directory, mark stranded jobs interrupted, drive
every bench safe, start the workers); stopping it interrupts running jobs at their next checkpoint
and leaves every bench safe. Both run in a worker thread, off the event loop, which also keeps the
process-wide SIGINT/SIGTERM hooks of :mod:`labsat.safety` from being installed over uvicorn's own
(uvicorn turns those signals into this orderly shutdown).

Errors map to status codes in one place: unknown ids 404, requests the state forbids (finished job,
busy or halted bench) 409, refused writes and malformed input 422 with ``detail`` in FastAPI's shape,
naming the field or channel. Every error answer, an unexpected one (500) included, is JSON of one shape
(:class:`~labsat.api.schemas.ErrorResponse`), and each route's OpenAPI entry lists the errors it can give.

``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from the service itself
(``fastapi-offline``'s copies), never from a CDN: a bench PC is often on a network without one. So does
the dashboard at ``/`` (:mod:`labsat.api.dashboard`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError

from labsat import __version__
from labsat.api import artifacts, benches, dashboard, jobs, records
from labsat.api.auth import ReadAccess, Scope, TokenTable, route_scope
from labsat.api.schemas import ErrorResponse, Health, Whoami
from labsat.errors import Halted, LabsatError, LimitViolation, RefusedRequest, UnknownChannel
from labsat.jobs.engine import JobEngine
from labsat.jobs.kinds import UnknownKind
from labsat.jobs.model import InvalidTransition
from labsat.jobs.worker import BenchBusy
from labsat.store import NotFound

API_PREFIX = "/api"
OPEN_ROUTES = frozenset({"health"})
"""Routes anyone may call: liveness only, nothing about the lab."""

_STATUS: tuple[tuple[type[LabsatError], int], ...] = (
    (NotFound, status.HTTP_404_NOT_FOUND),
    (InvalidTransition, status.HTTP_409_CONFLICT),
    (BenchBusy, status.HTTP_409_CONFLICT),
    (Halted, status.HTTP_409_CONFLICT),
    (RefusedRequest, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (UnknownKind, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (LabsatError, status.HTTP_400_BAD_REQUEST),
)

DESCRIPTION = """
Drive a photonic bench over REST: jobs (calibrate, train, evaluate, deploy) queue per bench and run on
the one worker that owns its hardware; follow them live over Server-Sent Events.

**Auth**: `Authorization: Bearer <token>`. Scopes `read` < `operate` < `admin`; each operation states the
scope it needs (`x-labsat-scope`). No token: 401; too low a scope: 403.
"""


def create_app(engine: JobEngine, tokens: TokenTable) -> FastAPI:
    """The labsat REST app over ``engine`` (started and stopped with the app).

    Reads are not paced: with each bench in a process of its own (``labsat serve``), answering pollers
    does not take the interpreter from a job (``benchmarks/bench_api.py``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(engine.start)
        try:
            yield
        finally:
            await run_in_threadpool(engine.close)

    app = FastAPIOffline(title="labsat", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.engine = engine
    app.state.tokens = tokens
    for router in (  # included one by one, not nested: each level of routers costs every request a match
        jobs.build_router(jobs.job_request_type()),  # first: job polling is the hot path
        benches.router,
        records.router,
        artifacts.router,
        _service_router(),
    ):
        _document_scopes(router)
        app.include_router(router, prefix=API_PREFIX)
    dashboard.install(app)
    app.add_exception_handler(LabsatError, _labsat_error)  # type: ignore[arg-type]
    app.add_exception_handler(ValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
    return app


def _service_router() -> APIRouter:
    router = APIRouter(tags=["service"])

    @router.get("/health", summary="Liveness (no token needed)")
    async def health() -> Health:
        return Health(version=__version__)

    @router.get("/whoami", summary="The token's name and scope")
    async def whoami(who: ReadAccess) -> Whoami:
        return Whoami(name=who.name, scope=who.scope.label)

    return router


def _document_scopes(router: APIRouter) -> None:
    """Write each route's scope into its OpenAPI entry; refuse to build an app with an unguarded route."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or route.name in OPEN_ROUTES:
            continue
        if "x-labsat-scope" in (route.openapi_extra or {}):
            continue  # a module-level router that an earlier app already documented
        scope = route_scope(route.dependant)
        if scope is None:
            raise RuntimeError(f"route {route.path} declares no token scope")
        route.openapi_extra = {**(route.openapi_extra or {}), "x-labsat-scope": scope.label}
        route.responses = {**_error_responses(route, scope), **route.responses}
        route.description = f"{route.description}\n\nScope: `{scope.label}`.".strip()


_WRITES = frozenset({"POST", "PUT", "DELETE"})


def _error_responses(route: APIRoute, scope: Scope) -> dict[int | str, dict[str, Any]]:
    """The error answers ``route`` can give, for its OpenAPI entry (all of them :class:`ErrorResponse`)."""
    errors = {status.HTTP_401_UNAUTHORIZED: "No token, or one the service does not know."}
    if scope > Scope.READ:
        errors[status.HTTP_403_FORBIDDEN] = f"The token's scope is below {scope.label}."
    writes = bool((route.methods or set()) & _WRITES)
    if "{" in route.path or writes:
        errors[status.HTTP_404_NOT_FOUND] = "No such job, bench, model, calibration or artifact (or a prefix of none)."
    if writes:
        errors[status.HTTP_400_BAD_REQUEST] = "A request the service cannot place (several benches, none named)."
        errors[status.HTTP_409_CONFLICT] = "The state forbids it: a finished job, a busy, halted or faulted bench."
    if get_flat_params(route.dependant) or route.body_field is not None:
        errors[status.HTTP_422_UNPROCESSABLE_CONTENT] = "A malformed or refused value; `detail` names each field."
    json = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}  # also off JSON routes
    return {code: {"model": ErrorResponse, "description": text, "content": json} for code, text in errors.items()}


async def _labsat_error(request: Request, exc: LabsatError) -> JSONResponse:
    code = next(code for kind, code in _STATUS if isinstance(exc, kind))
    detail: object = str(exc)
    if isinstance(exc, LimitViolation):
        detail = [{"loc": ["body", "values", f"{exc.device}.{exc.channel}"], "msg": str(exc), "type": "limit"}]
    elif isinstance(exc, UnknownChannel):
        detail = [{"loc": ["body", "values"], "msg": str(exc), "type": "unknown_channel"}]
    return JSONResponse({"detail": detail}, status_code=code)


async def _request_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A malformed request's 422, naming each field, without echoing the input: a NaN or Infinity the client
    sent (Python's JSON reader takes them) cannot be written back as JSON, and would turn the 422 into a 500."""
    errors = [{"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]} for error in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _validation_error(request: Request, exc: ValidationError) -> JSONResponse:
    """Parameters validated below the API (a plugin kind's own checks) are still the client's mistake."""
    errors = [{"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]} for error in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A fault of the service's own: still JSON of the one error shape, without internals in the answer."""
    return JSONResponse(
        {"detail": f"internal error ({type(exc).__name__}); the service's log has the details"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
