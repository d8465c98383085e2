"""The store: calibration records and trained models in SQLite (WAL) or any SQLAlchemy URL, artifacts on disk."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import torch
from sqlalchemy import text

from labsat.calibration.record import RECORD_VERSION, CalibrationRecord, DetectorsResult
from labsat.errors import LabsatError
from labsat.store import NotFound, Store, new_id, utcnow


def _record(bench: str = "sim-mrr", *, complete: bool = True, minutes: int = 0) -> CalibrationRecord:
    record_id = new_id()
    return CalibrationRecord(
        id=record_id,
        bench=bench,
        bench_identity="abc",
        created=utcnow() + timedelta(minutes=minutes),
        rows=2,
        cols=2,
        detectors=DetectorsResult(record_id=record_id, dark_volts=[0.1, 0.2], complete=True),
        complete=complete,
    )


def test_sqlite_store_runs_in_wal_mode_under_the_data_dir(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert (tmp_path / "store.db").exists()
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_calibrations_round_trip_list_and_latest(tmp_path: Path) -> None:
    store = Store(tmp_path)
    old, new, other = _record(minutes=-5), _record(), _record("other-bench")
    unfinished = _record(complete=False, minutes=5)
    for record in (old, new, other, unfinished):
        store.save_calibration(record)

    loaded = store.get_calibration(new.id)
    assert loaded == new
    assert loaded.procedures == ["detectors"]
    assert [r.id for r in store.list_calibrations("sim-mrr")] == [unfinished.id, new.id, old.id]
    assert len(store.list_calibrations()) == 4
    latest = store.latest_calibration("sim-mrr")
    assert latest is not None and latest.id == new.id
    running = store.latest_calibration("sim-mrr", complete=False)
    assert running is not None and running.id == unfinished.id
    assert store.latest_calibration("nobody") is None


def test_saving_a_record_again_replaces_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    record = _record(complete=False)
    store.save_calibration(record)
    record.complete = True
    store.save_calibration(record)
    assert len(store.list_calibrations()) == 1
    assert store.get_calibration(record.id).complete


def test_unknown_ids_and_newer_records_are_clear_errors(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(NotFound, match="no calibration 'nope'"):
        store.get_calibration("nope")
    with pytest.raises(NotFound, match="no model 'nope'"):
        store.get_model("nope")
    data = _record().model_dump(mode="json") | {"version": RECORD_VERSION + 1}
    with pytest.raises(LabsatError, match="record version"):
        CalibrationRecord.from_stored(data)


def test_models_keep_controls_as_an_artifact(tmp_path: Path) -> None:
    store = Store(tmp_path)
    controls = {"layer0": torch.rand(3, 4), "layer1": torch.rand(2, 3)}
    model_id = store.save_model("sim-mrr", "sat", controls, {"accuracy": 0.93, "epochs": 5})
    store.save_model("sim-mrr", "bp", {"layer0": torch.zeros(1)}, {})
    store.save_model("other", "sat", {"layer0": torch.zeros(1)}, {})

    assert (tmp_path / "artifacts" / "models" / model_id / "controls.pt").exists()
    model = store.get_model(model_id)
    assert model.bench == "sim-mrr" and model.method == "sat" and model.metadata["accuracy"] == 0.93
    assert model.created.tzinfo is not None
    assert all(torch.equal(model.controls[name], controls[name]) for name in controls)
    assert len(store.list_models()) == 3
    assert [m.id for m in store.list_models(bench="sim-mrr", method="sat")] == [model_id]


def test_a_url_opens_any_database_with_artifacts_elsewhere(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'shared.db'}", artifacts_root=tmp_path / "files")
    record = _record()
    store.save_calibration(record)
    assert Store(f"sqlite:///{tmp_path / 'shared.db'}").get_calibration(record.id) == record
    expected = tmp_path / "files" / "artifacts" / "calibrations" / record.id
    assert store.artifact_dir("calibrations", record.id) == expected


def test_artifact_names_cannot_leave_the_artifact_tree(tmp_path: Path) -> None:
    with pytest.raises(LabsatError, match="not a valid artifact name"):
        Store(tmp_path).artifact_dir("calibrations", "../../etc")
