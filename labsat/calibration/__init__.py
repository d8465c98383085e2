"""Calibration: an MRR bank's procedures and the record they fill, an MZI mesh's whole-mesh fit and its record.

``calibrate_bench(bench, store)`` calibrates whichever the bench is (:mod:`labsat.calibration.dispatch`):
a bank with ``calibrate`` (every procedure, see :mod:`labsat.calibration.runner`), whose record builds a
twin (:mod:`labsat.twin`); a mesh with :func:`~labsat.calibration.mzi.calibrate_mesh`, stored as a
:class:`MeshCalibrationRecord` whose ``calibration().apply(system)`` is its twin.
"""

from labsat.calibration.dispatch import calibrate_bench, record_type
from labsat.calibration.mesh_record import MeshCalibrationOptions, MeshCalibrationRecord
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
from labsat.calibration.stored import StoredCalibration

__all__ = [
    "MEASUREMENTS",
    "PROCEDURE_ORDER",
    "CalibrationOptions",
    "CalibrationRecord",
    "ChipParameters",
    "Flag",
    "MeshCalibrationOptions",
    "MeshCalibrationRecord",
    "RecordComparison",
    "StoredCalibration",
    "bench_identity",
    "calibrate",
    "calibrate_bench",
    "compare",
    "record_type",
]
