"""Which chip an evaluation runs on: the simulator's ground truth, the calibrated twin, fresh chips.

Perturbation sweeps need a chip model that can be warmed, made noisy or redrawn, which a real bench
cannot do on request. So:

* on a **simulated** bench the network is evaluated on the simulator's own ground-truth chip, read out
  through the calibration (exactly what the bench measures, minus its noise): the honest answer;
* on a **real** bench it is evaluated on the calibrated twin: the best model of that chip there is;
* **transfer** draws fresh chips of the bench's design (its ``simulator:`` section, or the default
  design) with new fabrication seeds, and runs the same controls through the same calibrated readout,
  as a deployed model would run on a replacement chip that nobody recalibrated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from labsat.bench import Bench
from labsat.calibration.record import CalibrationRecord
from labsat.calibration.session import bench_identity
from labsat.calibration.twins import latest_record
from labsat.errors import LabsatError
from labsat.evaluation.photonic import (
    ChipDraw,
    ChipPopulation,
    EvaluationSettings,
    LayerModel,
    StoredNetwork,
    evaluate_network,
)
from labsat.evaluation.report import ModelEvaluation
from labsat.readout import Readout
from labsat.simulators.mrr import MRRSimConfig, chip_params, draw_chips
from labsat.store import Store
from labsat.systems.kind import system_of
from labsat.systems.mrr import MRRBankSystem
from labsat.training.evaluate import accuracy
from labsat.truth import ground_truth
from labsat.twin import Twin, apply_calibration

SWEEPS = ("drift", "noise", "transfer")
"""The perturbation sweeps a bank's chip model runs (warming, read noise, fresh chips)."""


@dataclass(frozen=True)
class BenchChips:
    """The layer model to evaluate on, how to draw fresh chips, and a line saying what the model is."""

    layer: LayerModel
    population: ChipPopulation
    source: str
    calibration_id: str


def fresh_chips(config: MRRSimConfig, rows: int, cols: int, readout: Readout, device: torch.device) -> ChipDraw:
    """``(σ_fab, seed) ->`` the layer model of a newly fabricated chip of this design, read out by ``readout``."""

    def draw(fab_sigma_nm: float, seed: int) -> LayerModel:
        design = config.model_copy(update={"fab_sigma_nm": fab_sigma_nm})
        return Twin(chip_params(design, rows, cols, seed, device, torch.float32), readout).layer

    return draw


def fresh_chip_population(
    config: MRRSimConfig, rows: int, cols: int, readout: Readout, device: torch.device
) -> ChipPopulation:
    """``(σ_fab, seeds) ->`` one layer model of all those fresh chips (:func:`fresh_chips`'s, batched on ``device``)."""

    def draw(fab_sigma_nm: float, seeds: Sequence[int]) -> LayerModel:
        design = config.model_copy(update={"fab_sigma_nm": fab_sigma_nm})
        return Twin(draw_chips(design, rows, cols, seeds, device, torch.float32), readout).layer

    return draw


def bench_chips(bench: Bench, store: Store, calibration: str | None = None) -> BenchChips:
    """The chips of ``bench`` read out with calibration ``calibration`` (default: its newest), applied to the System.

    A model should be evaluated with the calibration it was trained with: its controls and digital gains
    were fitted to that readout's units.
    """
    record = (
        store.get_calibration(calibration)
        if calibration is not None
        else latest_record(store, bench.name, bench_identity(bench))
    )
    if not isinstance(record, CalibrationRecord):
        raise LabsatError(f"calibration {record.id} is a {record.kind} calibration, not an MRR bank's")
    system = system_of(bench, MRRBankSystem)
    apply_calibration(system, record)
    readout = system.readout
    simulated = ground_truth(bench.shared)
    if simulated is not None:
        layer = Twin(simulated.truth.to(dtype=torch.float32), readout).layer
        source = f"simulated chip (seed {simulated.seed}, ground truth) read out with calibration {record.id}"
    else:
        layer = Twin.from_record(record, bench.torch_device).layer
        source = f"twin of calibration {record.id} (a real bench cannot be warmed or redrawn on request)"
    # The design fresh chips are drawn from: the bench's simulator section, which a simulated chip is built from.
    config = MRRSimConfig.model_validate(bench.spec.simulator or {})
    design = (config, system.rows, system.cols, readout, bench.torch_device)
    return BenchChips(
        layer=layer,
        population=fresh_chip_population(*design),
        source=source,
        calibration_id=record.id,
    )


def evaluate_on_chips(
    bench: Bench, store: Store, model: StoredNetwork, settings: EvaluationSettings
) -> ModelEvaluation:
    """A bank's evaluation: sweeps, sharpness, landscape and confusion on its chips, accuracy on the device.

    The chips are read out with the calibration the model was trained with on its own bench (another
    bench's newest otherwise).
    """
    chips = bench_chips(bench, store, model.calibration_on(bench.name))
    evaluation = evaluate_network(
        model.name,
        model.net,
        chips.layer,
        model.test,
        method=model.metadata.get("method", ""),
        chips=chips.population,
        settings=settings,
        metadata={"model": model.model_id, "bench": bench.name, "evaluated_on": chips.source},
    )
    system = system_of(bench, MRRBankSystem)
    evaluation.device_accuracy = accuracy(model.net, model.test, lambda _index, x, theta: system.forward(x, theta))
    return evaluation


@dataclass(frozen=True)
class ChipModelEvaluation:
    """The evaluation part of a bank's kind (:class:`~labsat.systems.kind.Evaluation`)."""

    sweeps: tuple[str, ...] = SWEEPS
    default_sweeps: tuple[str, ...] = SWEEPS

    def evaluate(
        self, bench: Bench, store: Store, model: StoredNetwork, settings: EvaluationSettings
    ) -> ModelEvaluation:
        return evaluate_on_chips(bench, store, model, settings)
