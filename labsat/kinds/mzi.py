"""The MZI mesh as a system kind: a Clements mesh calibrated by one whole-mesh fit, trained in phase.

Its fitted twin is the record's fit applied to the System (:mod:`labsat.calibration.mzi`); its network
reads as many modes as the data has classes (:mod:`labsat.training.mzi`). It is evaluated on its device and
twin (:mod:`labsat.evaluation.layer`): it has no thermal model to warm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labsat.calibration.fit_runner import FitCalibration, calibrate_mesh_bench
from labsat.calibration.mesh_record import MeshCalibrationOptions, MeshCalibrationRecord
from labsat.calibration.stored import StoredCalibration
from labsat.datasets import Dataset
from labsat.errors import LabsatError
from labsat.evaluation.layer import LayerEvaluation
from labsat.simulators.plugin import MZI_CHIP
from labsat.specs.mzi import MZISystemSpec
from labsat.systems.kind import CalibrationSettings, Kind, system_of
from labsat.systems.mzi import MZIMeshSystem
from labsat.training.config import TrainConfig
from labsat.training.mzi import mesh_network, mesh_physical_layer
from labsat.training.physical import PhysicalLayer

if TYPE_CHECKING:
    from labsat.bench import Bench


class MeshTraining:
    """Phases per MZI; the network reads as many modes as there are classes."""

    disturbances: tuple[str, ...] = ()

    def network(self, bench: Bench, config: TrainConfig, dataset: Dataset) -> TrainConfig:
        return mesh_network(config, system_of(bench, MZIMeshSystem).modes, dataset.n_classes)

    def layer(self, bench: Bench, record: StoredCalibration, outputs: int) -> PhysicalLayer:
        if not isinstance(record, MeshCalibrationRecord):
            raise LabsatError(f"calibration {record.id} is a {record.kind} calibration, not an MZI mesh's")
        system = system_of(bench, MZIMeshSystem)
        twin = record.calibration(bench.torch_device).apply(system)
        return mesh_physical_layer(system, twin, outputs)


SETTINGS = CalibrationSettings("mesh", MeshCalibrationOptions, "mesh", "MZI mesh: how the fit measures and fits")

KIND = Kind(
    type="mzi_mesh",
    spec=MZISystemSpec,
    system=MZIMeshSystem,
    calibration=FitCalibration(MeshCalibrationRecord, "an MZI mesh's fit", SETTINGS, calibrate_mesh_bench),
    training=MeshTraining(),
    evaluation=LayerEvaluation(
        benchmark="benchmarks/bench_mzi.py runs benchmarks/sweeps/mzi.yaml (methods × twins, fresh devices, transfer)."
    ),
    simulator=MZI_CHIP,
)
