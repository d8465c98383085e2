"""The store: calibration records and trained models in a database, bulky arrays on disk.

One SQLAlchemy 2 declarative :class:`Base` holds every table, so the service's jobs and events tables
(added later) share the engine, the session handling and :meth:`Store.create` without a second schema.

- **Database.** SQLite in WAL mode under the data directory by default (``store.db``): no server to
  start, and a reader (the CLI listing calibrations) never blocks the writer (a running job). Pass a
  URL (``postgresql+psycopg://...``) instead of a directory when a lab shares one database.
- **Artifacts.** Tensors and plots never go into the database; they live under
  ``<data_dir>/artifacts/<kind>/<id>/`` where any tool can open them.

Calibration records are stored whole as JSON next to the columns a listing filters on (bench, time,
procedures), so a record written by an older labsat still loads: the record model, not the table,
carries the version. Every kind's records share the table; the JSON's ``kind`` says which, and the
``labsat.systems`` entry points name its kind and so its class (:func:`record_from_stored`), so the store
never imports the calibration code.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sqlalchemy import JSON, DateTime, Dialect, Float, Integer, String, Text, create_engine, event, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from labsat.entrypoints import UnknownSystemKind, known_system_types, load_system_kind
from labsat.errors import LabsatError
from labsat.paths import data_dir as default_data_dir

if TYPE_CHECKING:
    from labsat.calibration.stored import StoredCalibration

DB_FILE = "store.db"
ARTIFACTS = "artifacts"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class NotFound(LabsatError):
    """An id that the store does not hold."""


class AmbiguousId(NotFound):
    """A shortened id that more than one record starts with; the message lists them."""


SHOWN_CANDIDATES = 10
"""How many of the records an ambiguous prefix matches its error lists."""


def full_id(session: Session, column: Any, given: str, what: str) -> str:
    """The id of ``column``'s table that is ``given`` or, failing that, the only one starting with it.

    Ids are long enough to be unique and short enough to type, but nobody types twelve hex digits twice: a
    unique prefix names a record wherever an id is asked for. No match: ``given`` back (the caller's lookup
    then says what is missing); several: :class:`AmbiguousId` naming them.
    """
    if session.get(column.class_, given) is not None or not given.isalnum() or not given.isascii():
        return given
    query = select(column).where(column.startswith(given, autoescape=True)).order_by(column).limit(SHOWN_CANDIDATES + 1)
    found = list(session.scalars(query))
    if len(found) > 1:
        shown = ", ".join(found[:SHOWN_CANDIDATES]) + (", ..." if len(found) > SHOWN_CANDIDATES else "")
        raise AmbiguousId(f"{what} id {given!r} is ambiguous: it starts {shown}; give more of it")
    return found[0] if found else given


class Base(DeclarativeBase):
    """Every table of the store (calibrations, models; the service adds jobs and events)."""


def new_id() -> str:
    """A short random id: unique enough for one lab's records, short enough to type."""
    return uuid.uuid4().hex[:12]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC time on every backend (SQLite keeps no zone and would hand back naive times)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


class CalibrationRow(Base):
    __tablename__ = "calibrations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    bench: Mapped[str] = mapped_column(String(200), index=True)
    bench_identity: Mapped[str] = mapped_column(String(64))
    procedures: Mapped[str] = mapped_column(Text)  # comma-separated, in run order
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    delta_t_k: Mapped[float | None] = mapped_column(Float, nullable=True)
    complete: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(Integer)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    bench: Mapped[str] = mapped_column(String(200), index=True)
    method: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)


@dataclass(frozen=True)
class StoredModel:
    """A trained model: its control tensors (loaded from the artifact) and what the trainer noted."""

    id: str
    bench: str
    method: str
    created: datetime
    metadata: dict[str, Any]
    controls: dict[str, torch.Tensor]


@dataclass(frozen=True)
class ModelSummary:
    """A listing entry: everything but the tensors."""

    id: str
    bench: str
    method: str
    created: datetime
    metadata: dict[str, Any]


def _is_url(location: str | Path) -> bool:
    if isinstance(location, Path) or "://" not in location:
        return False
    try:
        make_url(location)
    except ArgumentError:
        return False
    return True


class Store:
    """Calibrations and models in one database; artifacts in a directory tree.

    ``Store(path)`` opens (creating if needed) ``path/store.db``; ``Store(url)`` opens that database and
    keeps artifacts under ``artifacts_root`` (default: the data directory). ``Store()`` uses
    :func:`labsat.paths.data_dir`.
    """

    def __init__(self, location: str | Path | None = None, *, artifacts_root: Path | None = None) -> None:
        if location is not None and _is_url(location):
            url = str(location)
            root = artifacts_root or default_data_dir()
        else:
            root = default_data_dir(Path(location) if location is not None else None)
            url = f"sqlite:///{root / DB_FILE}"
            if artifacts_root is not None:
                root = artifacts_root
        self.url = url
        self.root = root
        self.engine = _engine(url)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends normally, rolled back on an exception."""
        with self._sessions.begin() as session:
            yield session

    def artifact_dir(self, kind: str, item_id: str) -> Path:
        """``<root>/artifacts/<kind>/<id>/``, created if missing."""
        for part in (kind, item_id):
            if not _SAFE_NAME.match(part):
                raise LabsatError(f"{part!r} is not a valid artifact name (letters, digits, '.', '_', '-')")
        path = self.root / ARTIFACTS / kind / item_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- calibrations -------------------------------------------------------------------------------

    def save_calibration(self, record: StoredCalibration) -> str:
        """Insert or replace ``record`` (by its id); a run in progress saves itself here after each step."""
        row = CalibrationRow(
            id=record.id,
            bench=record.bench,
            bench_identity=record.bench_identity,
            procedures=",".join(record.procedures),
            created=record.created,
            delta_t_k=record.delta_t_k,
            complete=record.complete,
            version=record.version,
            record=record.model_dump(mode="json"),
        )
        with self.session() as session:
            session.merge(row)
        return record.id

    def get_calibration(self, calibration_id: str) -> StoredCalibration:
        with self.session() as session:
            row = session.get(CalibrationRow, full_id(session, CalibrationRow.id, calibration_id, "calibration"))
            if row is None:
                raise NotFound(f"no calibration {calibration_id!r} in the store at {self.url}")
            return _record(row)

    def latest_calibration(self, bench: str, *, complete: bool = True) -> StoredCalibration | None:
        """The newest record for ``bench`` (finished ones by default; ``complete=False`` for a run to resume)."""
        query = (
            select(CalibrationRow)
            .where(CalibrationRow.bench == bench, CalibrationRow.complete == complete)
            .order_by(CalibrationRow.created.desc())
            .limit(1)
        )
        with self.session() as session:
            row = session.scalars(query).first()
            return None if row is None else _record(row)

    def list_calibrations(self, bench: str | None = None) -> list[StoredCalibration]:
        """Every record (newest first), optionally for one bench, finished or not."""
        query = select(CalibrationRow).order_by(CalibrationRow.created.desc())
        if bench is not None:
            query = query.where(CalibrationRow.bench == bench)
        with self.session() as session:
            return [_record(row) for row in session.scalars(query)]

    # -- trained models -----------------------------------------------------------------------------

    def save_model(self, bench: str, method: str, controls: dict[str, torch.Tensor], metadata: dict[str, Any]) -> str:
        """Store trained controls (as ``controls.pt`` under the model's artifact dir) and their metadata."""
        model_id = new_id()
        tensors = {name: tensor.detach().cpu() for name, tensor in controls.items()}
        torch.save(tensors, self.artifact_dir("models", model_id) / "controls.pt")
        with self.session() as session:
            session.add(ModelRow(id=model_id, bench=bench, method=method, created=utcnow(), meta=dict(metadata)))
        return model_id

    def get_model(self, model_id: str) -> StoredModel:
        with self.session() as session:
            row = session.get(ModelRow, full_id(session, ModelRow.id, model_id, "model"))
            if row is None:
                raise NotFound(f"no model {model_id!r} in the store at {self.url}")
            summary = _model_summary(row)
        path = self.artifact_dir("models", summary.id) / "controls.pt"
        if not path.exists():
            raise NotFound(f"model {model_id!r}: its controls file {path} is missing")
        controls = torch.load(path, map_location="cpu", weights_only=True)
        return StoredModel(**summary.__dict__, controls=controls)

    def list_models(self, bench: str | None = None, method: str | None = None) -> list[ModelSummary]:
        """Stored models (newest first), optionally filtered by bench and training method."""
        query = select(ModelRow).order_by(ModelRow.created.desc())
        if bench is not None:
            query = query.where(ModelRow.bench == bench)
        if method is not None:
            query = query.where(ModelRow.method == method)
        with self.session() as session:
            return [_model_summary(row) for row in session.scalars(query)]


def _record(row: CalibrationRow) -> StoredCalibration:
    return record_from_stored(row.record)


def record_from_stored(data: dict[str, Any]) -> StoredCalibration:
    """The record stored as ``data`` (JSON), as the record class of its ``kind``'s system kind (``labsat.systems``).

    A record stored before records had a kind is a bank's. The kinds are found through entry points, so
    the store holds any kind a plugin adds without importing the procedures that write them.
    """
    kind = data.get("kind", "mrr_bank")
    try:
        system_kind = load_system_kind(kind)
    except UnknownSystemKind:
        known = ", ".join(known_system_types()) or "no kind (reinstall labsat: its entry points are missing)"
        raise LabsatError(f"calibration {data.get('id')!r} is of kind {kind!r}; this labsat reads {known}") from None
    record: StoredCalibration = system_kind.calibration.record.from_stored(data)
    return record


def _model_summary(row: ModelRow) -> ModelSummary:
    return ModelSummary(id=row.id, bench=row.bench, method=row.method, created=row.created, metadata=row.meta)


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(connection: Any, _record: Any) -> None:
        # WAL lets readers (listings, the REST API) run while a job writes; NORMAL sync is safe with WAL.
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine
