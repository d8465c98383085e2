"""The end-to-end demo on the embedded simulated bench: calibrate, train, evaluate, report.

It is the shortest path through everything labsat does, and the comparison the SAT work is about:
weight-space backprop trained in silico and deployed on the chip, against PAT+SAT trained with the chip
in the loop, both then put under uniform thermal drift and measured for sharpness in control space.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labsat.datasets import load_dataset
from labsat.errors import LabsatError
from labsat.evaluation import ModelEvaluation
from labsat.evaluation.photonic import EvaluationSettings
from labsat.evaluation.session import evaluate_models
from labsat.store import Store
from labsat.training.config import TrainConfig
from labsat.training.loop import StepRecord
from labsat.training.session import TrainingRun, bench_twin, train_on_bench

if TYPE_CHECKING:
    from labsat.bench import Bench


@dataclass(frozen=True)
class DemoPlan:
    """What the demo trains; the defaults fit the 5-minute budget on two CPU cores."""

    dataset: str = "digits"
    seed: int = 0
    epochs: int = 10
    methods: tuple[str, ...] = ("bp", "pat+sat")

    def config(self, method: str) -> TrainConfig:
        return TrainConfig(method=method, epochs=self.epochs, seed=self.seed)


@dataclass
class DemoResult:
    runs: list[TrainingRun]
    evaluations: list[ModelEvaluation]
    report: Path
    calibration_id: str

    def table(self) -> dict[str, Any]:
        """One row per method: clean device accuracy, accuracy at every drift the report sweeps, λmax and trace in
        control space, and the run's settings."""
        rows = []
        for run, evaluation in zip(self.runs, self.evaluations, strict=True):
            drift = evaluation.sweeps["drift"]
            sharpness = evaluation.sharpness
            if sharpness is None:
                raise LabsatError(f"model {run.model_id} was evaluated without sharpness; the demo table needs it")
            rows.append(
                {
                    "method": run.config.method,
                    "model": run.model_id,
                    "device_accuracy": run.device_accuracy,
                    # every value the report sweeps (DRIFT_RANGE_K), so table, JSON and report agree
                    "accuracy_vs_drift": {
                        f"{value:g}": float(mean) for value, mean in zip(drift.values, drift.mean, strict=True)
                    },
                    "lambda_max": sharpness.lambda_max,
                    "hessian_trace": sharpness.trace,
                    "bench_time_s": run.result.cost.bench_time_s,
                    "device_forwards": run.result.cost.forwards,
                    "settings": evaluation.settings,
                }
            )
        classes = {evaluation.classes for evaluation in self.evaluations if evaluation.classes}
        chance = 1.0 / next(iter(classes)) if len(classes) == 1 else None  # one dataset: one chance level
        return {"calibration": self.calibration_id, "report": str(self.report), "chance": chance, "rows": rows}


StageCallback = Callable[[str], None]


def run_demo(
    bench: Bench,
    store: Store,
    plan: DemoPlan | None = None,
    *,
    on_stage: StageCallback | None = None,
    on_step: Callable[[str, StepRecord], None] | None = None,
) -> DemoResult:
    """Calibrate the bench, train each planned method, evaluate drift and sharpness, write the report."""
    plan = plan or DemoPlan()
    stage = on_stage or (lambda _text: None)
    dataset = load_dataset(plan.dataset, seed=plan.seed)

    stage("calibrating the chip and fitting its twin")
    _, record, _ = bench_twin(bench, store)

    runs = []
    for method in plan.methods:
        stage(f"training {method} on {plan.dataset}")
        runs.append(
            train_on_bench(
                bench,
                store,
                plan.config(method),
                dataset,
                dataset_label=plan.dataset,
                calibration=record.id,
                on_step=None if on_step is None else partial(on_step, method),
            )
        )

    stage("evaluating drift robustness and sharpness, writing the report")
    settings = EvaluationSettings(sweeps=("drift",), seed=plan.seed, landscape_steps=21)
    evaluations, report = evaluate_models(bench, store, [run.model_id for run in runs], settings)
    return DemoResult(runs=runs, evaluations=evaluations, report=report, calibration_id=record.id)
