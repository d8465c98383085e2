"""Every kind of calibration record the store holds, told apart by its ``kind``, and what they share.

One table, one id space and one listing for all of them: ``labsat calibrations`` and the REST listing
show a bank's record next to a mesh's or a D2NN's, and ``--calibration ID`` names any. A record's ``kind`` is its
system's ``type`` in the bench file; records stored before there was more than one kind carry none and
are a bank's. The store reads a record as the record class of its system kind (``labsat.systems`` entry points,
:func:`labsat.store.record_from_stored`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from labsat.calibration.fitted import FitRecord
from labsat.calibration.record import CalibrationRecord
from labsat.errors import LabsatError

if TYPE_CHECKING:
    from labsat.store import Store

StoredCalibration = CalibrationRecord | FitRecord
"""A calibration record of any kind: a bank's chain of procedures, or one finished fit (a mesh's, a D2NN's...)."""

RecordType = type[CalibrationRecord] | type[FitRecord]
"""The record class of a system kind (:attr:`Calibration.record <labsat.systems.kind.Calibration.record>`)."""

R = TypeVar("R", bound=StoredCalibration)


def latest_record_of(store: Store, bench_name: str, identity: str | None, record_type: type[R]) -> R:
    """The newest finished ``record_type`` calibration of a bench that builds a twin (optionally of one identity)."""
    for record in store.list_calibrations(bench_name):
        if isinstance(record, record_type) and record.builds_twin and identity in (None, record.bench_identity):
            return record
    raise LabsatError(
        f"bench {bench_name!r} has no finished calibration"
        + ("" if identity is None else " of these instruments and this chip")
        + f" in the store at {store.url}: run `labsat calibrate --bench FILE` first"
    )


def summary_fields(record: StoredCalibration) -> dict[str, Any]:
    """What a listing shows of any record (the CLI's table and JSON, the REST listing)."""
    return {
        "id": record.id,
        "bench": record.bench,
        "kind": record.kind,
        "created": record.created,
        "procedures": record.procedures,
        "complete": record.complete,
        "flags": len(record.flags),
        **record.twin_rms(),
    }
