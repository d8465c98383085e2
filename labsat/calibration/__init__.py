"""Calibration of an MRR bank: procedures that measure the chip, the record they fill, and the runner.

``calibrate(bench, store)`` runs every procedure (see :mod:`labsat.calibration.runner`); the record it
returns builds a twin (:mod:`labsat.twin`).
"""

from labsat.calibration.record import (
    MEASUREMENTS,
    PROCEDURE_ORDER,
    CalibrationOptions,
    CalibrationRecord,
    ChipParameters,
    Flag,
    RecordComparison,
    compare,
)
from labsat.calibration.runner import calibrate
from labsat.calibration.session import bench_identity

__all__ = [
    "MEASUREMENTS",
    "PROCEDURE_ORDER",
    "CalibrationOptions",
    "CalibrationRecord",
    "ChipParameters",
    "Flag",
    "RecordComparison",
    "bench_identity",
    "calibrate",
    "compare",
]
