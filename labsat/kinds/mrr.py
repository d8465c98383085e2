"""The MRR weight bank as a system kind: broadcast-and-weight rings, calibrated by resumable procedures.

Its twin is built from the calibration record (:mod:`labsat.twin`) and trained in heater volts over any
layer width (the System tiles); it is evaluated on its chip model (:mod:`labsat.evaluation.chips`), which
alone can be warmed, made noisy and redrawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labsat.calibration.record import CalibrationOptions, CalibrationRecord
from labsat.calibration.reporting import CalibrationReport, bank_report
from labsat.calibration.runner import calibrate
from labsat.calibration.session import Observer, Progress
from labsat.calibration.stored import StoredCalibration
from labsat.datasets import Dataset
from labsat.errors import LabsatError
from labsat.evaluation.chips import ChipModelEvaluation
from labsat.simulators.plugin import MRR_CHIP
from labsat.specs.mrr import MRRSystemSpec
from labsat.store import Store
from labsat.systems.kind import CalibrationSettings, Kind, system_of
from labsat.systems.mrr import MRRBankSystem
from labsat.training.config import TrainConfig
from labsat.training.fdsat import require_in_silico
from labsat.training.physical import DRIFT, PhysicalLayer
from labsat.twin import Twin, apply_calibration

if TYPE_CHECKING:
    from labsat.bench import Bench


class BankCalibration:
    """The bank's chain of procedures (:func:`~labsat.calibration.runner.calibrate`), resumable step by step."""

    record = CalibrationRecord
    label = "an MRR bank's calibration procedures"
    parameters = ("only", "resume", "options")
    settings = (CalibrationSettings("options", CalibrationOptions, "", "MRR bank: how the procedures measure"),)

    def run(
        self,
        bench: Bench,
        store: Store,
        settings: Mapping[str, Any],
        progress: Progress | None,
        observe: Observer | None = None,
    ) -> StoredCalibration:
        return calibrate(
            bench,
            store,
            only=settings.get("only"),
            resume=bool(settings.get("resume", False)),
            options=settings.get("options"),
            progress=progress,
            observe=observe,
        )

    def report(self, record: StoredCalibration, store: Store, *, figures: bool = True) -> CalibrationReport:
        if not isinstance(record, CalibrationRecord):
            raise LabsatError(f"calibration {record.id} is a {record.kind} calibration, not an MRR bank's")
        return bank_report(record, store, figures=figures)


class BankTraining:
    """Heater volts per weight, any ``(out, in)`` tiled onto the bank.

    The twin drifts with the chip's temperature (kelvin since calibration), which sizes NAT's drift term and is the
    disturbance FD-SAT can train against (:data:`~labsat.training.physical.DRIFT`, probed through the twin)."""

    disturbances: tuple[str, ...] = (DRIFT,)

    def network(self, bench: Bench, config: TrainConfig, dataset: Dataset) -> TrainConfig:
        if config.fd_disturbance == DRIFT:
            require_in_silico(
                config.parsed, "the bank at another temperature", "nothing on a bench sets a chip's temperature"
            )
        return config

    def layer(self, bench: Bench, record: StoredCalibration, outputs: int) -> PhysicalLayer:
        if not isinstance(record, CalibrationRecord):
            raise LabsatError(f"calibration {record.id} is a {record.kind} calibration, not an MRR bank's")
        system = system_of(bench, MRRBankSystem)
        apply_calibration(system, record)
        twin = Twin.from_record(record, bench.torch_device)
        return PhysicalLayer.from_system(system, twin.layer).drifting()  # drifts through its delta_t_k


KIND = Kind(
    type="mrr_bank",
    spec=MRRSystemSpec,
    system=MRRBankSystem,
    calibration=BankCalibration(),
    training=BankTraining(),
    evaluation=ChipModelEvaluation(),
    simulator=MRR_CHIP,
)
