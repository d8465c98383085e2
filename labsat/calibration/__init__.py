"""Calibration: an MRR bank's procedures and the record they fill; an MZI mesh's whole-mesh fit and a D2NN's
SLM LUT fit, each stored as a record of one fit.

``calibrate_bench(bench, store)`` calibrates whichever the bench is (:mod:`labsat.calibration.dispatch`):
a bank with ``calibrate`` (every procedure, see :mod:`labsat.calibration.runner`), whose record builds a
twin (:mod:`labsat.twin`); a mesh with :func:`~labsat.calibration.mzi.calibrate_mesh`, stored as a
:class:`MeshCalibrationRecord` whose ``calibration().apply(system)`` is its twin; a D2NN with
:func:`~labsat.calibration.slm_lut.calibrate_slm_luts`, stored as a :class:`D2NNCalibrationRecord` whose
``apply(system)`` shows phases through the fitted LUTs, so that the nominal twin models the device.
"""

from labsat.calibration.comparison import RecordComparison, compare
from labsat.calibration.d2nn_record import D2NNCalibrationOptions, D2NNCalibrationRecord
from labsat.calibration.dispatch import calibrate_bench, record_type
from labsat.calibration.mesh_record import MeshCalibrationOptions, MeshCalibrationRecord
from labsat.calibration.record import (
    MEASUREMENTS,
    PROCEDURE_ORDER,
    CalibrationOptions,
    CalibrationRecord,
    ChipParameters,
    Flag,
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
    "D2NNCalibrationOptions",
    "D2NNCalibrationRecord",
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
