"""Calibrating a mesh or a D2NN bench: its one fit, run through the bench's guarded System, stored as a record.

The bank's runner (:mod:`labsat.calibration.runner`) saves after every step so an interrupted run
resumes; a mesh fit or a D2NN's LUT fit measures for seconds to minutes and then fits on the bench PC,
so it is stored once, finished (:func:`~labsat.calibration.fitted.store_fit`), and an interrupted one
simply runs again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labsat.calibration.d2nn_record import D2NNCalibrationOptions, D2NNCalibrationRecord
from labsat.calibration.fitted import store_fit
from labsat.calibration.mesh_record import MeshCalibrationOptions, MeshCalibrationRecord
from labsat.calibration.mzi import calibrate_mesh
from labsat.calibration.session import Progress
from labsat.calibration.slm_lut import calibrate_slm_luts
from labsat.errors import LabsatError
from labsat.store import Store
from labsat.systems.d2nn import D2NNSystem
from labsat.systems.mzi import MZIMeshSystem

if TYPE_CHECKING:
    from labsat.bench import Bench


def calibrate_mesh_bench(
    bench: Bench, store: Store, options: MeshCalibrationOptions | None = None, progress: Progress | None = None
) -> MeshCalibrationRecord:
    """Fit ``bench``'s mesh (:func:`~labsat.calibration.mzi.calibrate_mesh`); returns the record, saved in ``store``."""
    system = bench.system
    if not isinstance(system, MZIMeshSystem):
        raise LabsatError(f"bench {bench.name!r} is a {bench.spec.system.label}, not an MZI mesh")
    options = options or MeshCalibrationOptions()
    fit = options.model_dump()
    return store_fit(
        bench, store, MeshCalibrationRecord, options, lambda: calibrate_mesh(system, **fit, progress=progress)
    )


def calibrate_d2nn_bench(
    bench: Bench, store: Store, options: D2NNCalibrationOptions | None = None, progress: Progress | None = None
) -> D2NNCalibrationRecord:
    """Fit the LUT of every mask SLM of ``bench`` (:func:`~labsat.calibration.slm_lut.calibrate_slm_luts`).

    Returns the record, saved in ``store``.
    """
    system = bench.system
    if not isinstance(system, D2NNSystem):
        raise LabsatError(f"bench {bench.name!r} is a {bench.spec.system.label}, not a D2NN")
    options = options or D2NNCalibrationOptions()
    fit = options.model_dump()
    return store_fit(
        bench,
        store,
        D2NNCalibrationRecord,
        options,
        lambda: (calibrate_slm_luts(system, **fit, progress=progress), system),
    )
