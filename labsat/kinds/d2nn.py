"""The diffractive network (D2NN) as a system kind: phase-mask SLMs, calibrated by a LUT fit per mask.

Its System shows phases through the record's fitted LUTs, so the nominal twin models it; it trains in mask
phase (:mod:`labsat.training.diffractive`), FD-SAT against the masks' misalignment, and is evaluated on
its device and twin with the mask-rotation sweep (:mod:`labsat.evaluation.layer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labsat.calibration.d2nn_record import D2NNCalibrationOptions, D2NNCalibrationRecord
from labsat.calibration.fit_runner import FitCalibration, calibrate_d2nn_bench
from labsat.calibration.stored import StoredCalibration
from labsat.datasets import Dataset
from labsat.errors import LabsatError
from labsat.evaluation.layer import LayerEvaluation
from labsat.evaluation.sweeps import MISALIGNMENT
from labsat.physics.diffractive import DISTURBANCES
from labsat.simulators.plugin import D2NN_CHIP
from labsat.specs.d2nn import D2NNSystemSpec
from labsat.systems.d2nn import D2NNSystem
from labsat.systems.kind import CalibrationSettings, Kind, system_of
from labsat.training.config import TrainConfig
from labsat.training.diffractive import d2nn_network, diffractive_physical_layer
from labsat.training.physical import PhysicalLayer

if TYPE_CHECKING:
    from labsat.bench import Bench


class DiffractiveTraining:
    """Mask phases; FD-SAT may train against the masks' misalignment."""

    disturbances: tuple[str, ...] = DISTURBANCES

    def network(self, bench: Bench, config: TrainConfig, dataset: Dataset) -> TrainConfig:
        return d2nn_network(config, system_of(bench, D2NNSystem), dataset.n_features, dataset.n_classes)

    def layer(self, bench: Bench, record: StoredCalibration, outputs: int) -> PhysicalLayer:
        if not isinstance(record, D2NNCalibrationRecord):
            raise LabsatError(f"calibration {record.id} is a {record.kind} calibration, not a D2NN's")
        system = system_of(bench, D2NNSystem)
        record.apply(system)
        return diffractive_physical_layer(
            system.nominal_twin(), system.forward, stats=lambda: system.stats.copy(), outputs=outputs
        )


SETTINGS = CalibrationSettings("d2nn", D2NNCalibrationOptions, "lut", "D2NN: how the SLM LUT fit measures and fits")

KIND = Kind(
    type="d2nn",
    spec=D2NNSystemSpec,
    system=D2NNSystem,
    calibration=FitCalibration(D2NNCalibrationRecord, "a D2NN's SLM LUT fit", SETTINGS, calibrate_d2nn_bench),
    training=DiffractiveTraining(),
    evaluation=LayerEvaluation(
        sweeps=(MISALIGNMENT.name,),
        benchmark="benchmarks/bench_d2nn.py compares BP with SAT + FD-SAT under mask rotation.",
    ),
    simulator=D2NN_CHIP,
)
