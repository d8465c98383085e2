"""Calibrating a mesh or a D2NN bench: its one fit, run through the bench's guarded System, stored as a record.

The bank's runner (:mod:`labsat.calibration.runner`) saves after every step so an interrupted run
resumes; a mesh fit or a D2NN's LUT fit measures for seconds to minutes and then fits on the bench PC,
so it is stored once, finished (:func:`~labsat.calibration.fitted.store_fit`), and an interrupted one
simply runs again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labsat.calibration.d2nn_record import D2NNCalibrationOptions, D2NNCalibrationRecord
from labsat.calibration.fitted import FitRecord, store_fit
from labsat.calibration.mesh_record import MeshCalibrationOptions, MeshCalibrationRecord
from labsat.calibration.mzi import calibrate_mesh
from labsat.calibration.reporting import CalibrationReport, fit_report
from labsat.calibration.session import Observer, Progress
from labsat.calibration.slm_lut import calibrate_slm_luts
from labsat.calibration.stored import StoredCalibration
from labsat.errors import LabsatError
from labsat.store import Store
from labsat.systems.d2nn import D2NNSystem
from labsat.systems.kind import CalibrationSettings, system_of
from labsat.systems.mzi import MZIMeshSystem

if TYPE_CHECKING:
    from labsat.bench import Bench


def calibrate_mesh_bench(
    bench: Bench, store: Store, options: MeshCalibrationOptions | None = None, progress: Progress | None = None
) -> MeshCalibrationRecord:
    """Fit ``bench``'s mesh (:func:`~labsat.calibration.mzi.calibrate_mesh`); returns the record, saved in ``store``."""
    system = system_of(bench, MZIMeshSystem)
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
    system = system_of(bench, D2NNSystem)
    options = options or D2NNCalibrationOptions()
    fit = options.model_dump()
    return store_fit(
        bench,
        store,
        D2NNCalibrationRecord,
        options,
        lambda: (calibrate_slm_luts(system, **fit, progress=progress), system),
    )


@dataclass(frozen=True)
class FitCalibration:
    """The calibration part of a kind calibrated by one fit (:class:`~labsat.systems.kind.Calibration`).

    ``fit(bench, store, options, progress)`` runs it; its options model arrives as the one keyword ``options``
    names.
    """

    record: type[FitRecord]
    label: str
    options: CalibrationSettings
    fit: Callable[[Bench, Store, Any, Progress | None], FitRecord]

    @property
    def parameter(self) -> str:
        return self.options.parameter

    @property
    def parameters(self) -> tuple[str, ...]:
        return (self.parameter,)

    @property
    def settings(self) -> tuple[CalibrationSettings, ...]:
        return (self.options,)

    def run(
        self,
        bench: Bench,
        store: Store,
        settings: Mapping[str, Any],
        progress: Progress | None,
        observe: Observer | None = None,
    ) -> FitRecord:
        """One fit over the whole system: progress only (no measurement is shown before the fit is done)."""
        return self.fit(bench, store, settings.get(self.parameter), progress)

    def report(self, record: StoredCalibration, store: Store, *, figures: bool = True) -> CalibrationReport:
        if not isinstance(record, self.record):
            raise LabsatError(f"calibration {record.id} is a {record.kind} calibration, not {self.label}")
        return fit_report(record, store, figures=figures)
