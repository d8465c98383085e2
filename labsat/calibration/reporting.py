"""What a finished calibration reports: the summary commands print, their tables, the job's result, its figures.

Each record family says it its own way (a bank's chain of procedures, with plots and flags; one fit, with
its figures), and each kind's calibration part hands its records to one of these
(:attr:`Calibration.report <labsat.systems.kind.Calibration.report>`), so ``labsat calibrate``,
``labsat calibrations ID`` and the ``calibrate`` job print any kind's record without knowing which it is.
Tables are plain text cells here; the CLI renders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labsat.calibration.figures import write_figures
from labsat.calibration.fitted import FitRecord
from labsat.calibration.record import CalibrationRecord
from labsat.store import Store


@dataclass(frozen=True)
class TextTable:
    """A titled table of formatted cells: columns as ``(name, "left" | "right")``."""

    title: str
    columns: tuple[tuple[str, str], ...]
    rows: Sequence[tuple[str, ...]]
    caption: str | None = None
    fold: bool = False
    """Long cells wrap (messages) rather than being cut."""


@dataclass(frozen=True)
class CalibrationReport:
    """One record as the faces show it."""

    summary: dict[str, Any]
    """What ``labsat calibrate --json`` prints."""
    tables: list[TextTable]
    result: dict[str, Any]
    """What the ``calibrate`` job returns, besides its artifacts (:attr:`files`)."""
    parameters: Any
    """The fitted values, as ``labsat calibrations ID`` shows them (JSON-ready)."""
    files: list[Path] = field(default_factory=list)
    """Figures written for it (the job's artifacts)."""


def bank_report(record: CalibrationRecord, store: Store, *, figures: bool = True) -> CalibrationReport:
    """A bank's record: its procedures' cost, fit quality and flags; with ``figures``, its plots written."""
    files = write_figures(record, store) if figures else []
    procedures = []
    for name in record.procedures:
        result = record.result(name)
        assert result is not None
        procedures.append(
            {
                "procedure": name,
                "inherited_from": None if result.record_id == record.id else result.record_id,
                **result.cost.model_dump(),
                "quality": result.quality(),
                "flags": len(result.flags),
            }
        )
    rms = record.validation.weight_rms if record.validation else None
    summary = {
        "id": record.id,
        "bench": record.bench,
        "bench_identity": record.bench_identity,
        "created": record.created.isoformat(),
        "complete": record.complete,
        "delta_t_k": record.delta_t_k,
        "procedures": procedures,
        "flags": [flag.model_dump() for flag in record.flags],
        "twin_weight_rms": rms,
        "artifacts": str(store.artifact_dir("calibrations", record.id)),
        "plots": [str(path) for path in files],
    }
    rows = [
        (
            row["procedure"] + (f" (from {row['inherited_from']})" if row["inherited_from"] else ""),
            str(row["programs"]),
            str(row["samples"]),
            f"{row['bench_time_s']:.2f} s",
            row["quality"],
            str(row["flags"]) if row["flags"] else "",
        )
        for row in procedures
    ]
    caption = None if rms is None else f"twin vs device: {rms:.3g} RMS per weight; files in {summary['artifacts']}"
    columns = (
        ("procedure", "left"),
        ("programs", "right"),
        ("samples", "right"),
        ("bench time", "right"),
        ("fit quality", "left"),
        ("flags", "right"),
    )
    tables = [TextTable(f"calibration {record.id} of bench {record.bench}", columns, rows, caption)]
    if record.flags:
        flag_rows = [(flag.procedure, flag.target, flag.message) for flag in record.flags]
        flag_columns = (("procedure", "left"), ("what", "left"), ("message", "left"))
        tables.append(TextTable("flags", flag_columns, flag_rows, fold=True))
    job_result = {
        "calibration": record.id,
        "complete": record.complete,
        "procedures": record.procedures,
        "flags": len(record.flags),
        "twin_weight_rms": rms,
    }
    parameters = record.parameters.model_dump() if record.parameters else None
    return CalibrationReport(summary, tables, job_result, parameters, files)


def fit_report(record: FitRecord, store: Store, *, figures: bool = True) -> CalibrationReport:
    """A fit's record (a mesh's, a D2NN's...): where and how it ran, its figures, its cost; it writes no plots."""
    summary: dict[str, Any] = {
        "id": record.id,
        "bench": record.bench,
        "kind": record.kind,
        "bench_identity": record.bench_identity,
        "created": record.created.isoformat(),
        "complete": record.complete,
        "options": record.options.model_dump(),
        **record.figures(),
        "cost": record.cost.model_dump(),
        **record.described(),
    }
    title, rows, caption = record.table(summary)
    cost = record.cost
    rows = [
        *rows,
        ("programs", str(cost.programs)),
        ("samples", str(cost.samples)),
        ("bench time", f"{cost.bench_time_s:.2f} s"),
    ]
    table = TextTable(f"{title} {record.id} of bench {record.bench}", (("", "left"), ("value", "right")), rows, caption)
    result = {
        "calibration": record.id,
        "complete": record.complete,
        "procedures": record.procedures,
        **record.figures(),
    }
    return CalibrationReport(summary, [table], result, record.fitted())
