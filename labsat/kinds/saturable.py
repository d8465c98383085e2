"""The saturable-absorber network as a system kind: SLM weights, an absorber, a camera (``a = SA(W x)``).

Its twin is the layer's physics with the calibrated absorber (:mod:`labsat.calibration.absorber`): the
device's own weights and inputs clipped as the SLMs clip them. It trains in SLM weights over any layer that
fits the weight SLM, and is evaluated on its device and twin (:mod:`labsat.evaluation.layer`).
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from labsat.calibration.absorber import AbsorberCalibrationOptions, AbsorberCalibrationRecord, calibrate_absorber_bench
from labsat.calibration.fit_runner import FitCalibration
from labsat.calibration.stored import StoredCalibration
from labsat.datasets import Dataset
from labsat.errors import LabsatError
from labsat.evaluation.layer import LayerEvaluation
from labsat.physics.saturable import transmit
from labsat.simulators.saturable_bench import SATURABLE_CHIP
from labsat.specs.saturable import SaturableSystemSpec
from labsat.systems.kind import CalibrationSettings, Kind, system_of
from labsat.systems.saturable import WEIGHT_RANGE, SaturableSystem
from labsat.training.config import TrainConfig
from labsat.training.physical import PhysicalLayer

if TYPE_CHECKING:
    from labsat.bench import Bench

INIT_SCALE = 0.5
"""Initial weights are uniform in ±0.5, so the first fields sit near saturation (:mod:`labsat.training.saturable`)."""


class AbsorberTraining:
    """SLM weights per ``(out, in)`` layer, each no larger than the weight SLM."""

    disturbances: tuple[str, ...] = ()

    def network(self, bench: Bench, config: TrainConfig, dataset: Dataset) -> TrainConfig:
        system = system_of(bench, SaturableSystem)
        widths = (config.encoder or dataset.n_features, *config.hidden, dataset.n_classes)
        for width_in, width_out in pairwise(widths):
            if width_in > system.inputs or width_out > system.outputs:
                raise LabsatError(
                    f"a ({width_out}, {width_in}) layer does not fit the {system.spec.label} of bench {bench.name!r} "
                    f"(at most {system.outputs} outputs and {system.inputs} inputs; use --encoder or --hidden)"
                )
        return config

    def layer(self, bench: Bench, record: StoredCalibration, outputs: int) -> PhysicalLayer:
        if not isinstance(record, AbsorberCalibrationRecord):
            raise LabsatError(f"calibration {record.id} is a {record.kind} calibration, not a saturable absorber's")
        system = system_of(bench, SaturableSystem)
        full_scale, alpha0, i_sat = system.spec.input_full_scale, record.alpha0, record.i_sat

        def twin_layer(x: Tensor, weights: Tensor) -> Tensor:
            return transmit(x.clamp(0.0, full_scale) @ weights.clamp(*WEIGHT_RANGE).T, alpha0, i_sat)

        def initial_controls(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
            return (2 * torch.rand(shape, generator=generator) - 1) * INIT_SCALE

        return PhysicalLayer(
            system_forward=system.forward,
            twin_layer=twin_layer,
            control_range=WEIGHT_RANGE,
            stats=lambda: system.stats.copy(),
            initial_controls=initial_controls,
        )


SETTINGS = CalibrationSettings(
    "absorber",
    AbsorberCalibrationOptions,
    "absorber",
    "Saturable absorber: how its curve is measured and fitted",
)

KIND = Kind(
    type="saturable",
    spec=SaturableSystemSpec,
    system=SaturableSystem,
    calibration=FitCalibration(
        AbsorberCalibrationRecord, "a saturable absorber's curve fit", SETTINGS, calibrate_absorber_bench
    ),
    training=AbsorberTraining(),
    evaluation=LayerEvaluation(benchmark="tests/test_optical_backprop.py compares optical and exact backprop."),
    simulator=SATURABLE_CHIP,
)
