"""labsat's own job kinds: thin adapters from a job's parameters to the calibration, training and
evaluation packages, with the job context's callbacks plugged into theirs.

Nothing here measures or computes physics; each kind picks the package function, feeds it validated
parameters, turns its callbacks into progress, metrics and checkpoints, and returns its summary.

Datasets over REST are ``digits``, ``iris`` or the name of a file or directory under
``<data>/datasets/``: a remote client names data the bench PC already has and can never make the
service read an arbitrary path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, field_validator, model_validator

from labsat.bench import DEFAULT_BENCH
from labsat.calibration import (
    PROCEDURE_ORDER,
    calibrate_bench,
)
from labsat.datasets import BUILTIN, load_dataset
from labsat.evaluation import report_data
from labsat.evaluation.photonic import EvaluationSettings
from labsat.evaluation.session import evaluate_models
from labsat.evaluation.sweeps import SWEEPS
from labsat.jobs.kinds import JobContext, JobKind, register
from labsat.labelled import write_csv, write_netcdf
from labsat.store import ARTIFACTS, Store
from labsat.sweep.dataset import sweep_dataset
from labsat.sweep.engines import run_sweep
from labsat.sweep.grid import cells
from labsat.sweep.show import line_plots
from labsat.sweep.spec import DEVICE_MEASURES, SweepSpec
from labsat.systems.kind import calibration_settings, system_kind
from labsat.training.config import TrainConfig
from labsat.training.evaluate import accuracy
from labsat.training.loop import StepRecord
from labsat.training.relock import SOLVE_STEPS
from labsat.training.relock_session import MAX_PILOT, MAX_SOLVE_STEPS, relock_on_bench
from labsat.training.runners import device_runner
from labsat.training.session import bench_calibration, bench_layer, bench_network, model_for_bench, train_on_bench

DATASETS = "datasets"
"""Folder under the data directory whose entries REST clients may name as datasets."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

MAX_MODELS = 20
"""Most models one evaluation compares (each costs a full set of sweeps on the bench)."""


def _listed(value: Any) -> Any:
    """One value where a list is asked for (``-p models=ID`` on a command line) as a list of one."""
    return [value] if isinstance(value, str) else value


Listed = BeforeValidator(_listed)


def dataset_source(store: Store, label: str) -> str | Path:
    """What :func:`~labsat.datasets.load_dataset` should open for a dataset label."""
    if label in BUILTIN or Path(label).is_absolute():
        return label
    return store.root / DATASETS / label


def artifact_refs(store: Store, paths: list[Path]) -> list[str]:
    """Files under the artifact tree as ``kind/id/file`` (what ``GET /api/artifacts/...`` serves)."""
    root = store.root / ARTIFACTS
    return [path.relative_to(root).as_posix() for path in paths]


def _phase_progress(context: JobContext) -> Callable[[str, int, int], None]:
    """A calibration progress callback ``(procedure, done, total)`` reporting into the job."""

    def report(procedure: str, done: int, total: int) -> None:
        context.progress(done, total, phase=procedure)

    return report


# -- calibrate ------------------------------------------------------------------------------------------


class _CalibrateBase(BaseModel):
    """Calibrate the bench and fit its twin (``labsat calibrate``): a bank's procedures, a mesh's or a D2NN's fit."""

    model_config = ConfigDict(extra="forbid")

    only: Annotated[list[Literal[PROCEDURE_ORDER]] | None, Listed] = Field(  # type: ignore[valid-type]
        None, description="MRR bank: run only these procedures; the others come from the bench's latest calibration."
    )


_KIND_OPTIONS: dict[str, Any] = {  # one field per options model of every installed system kind
    setting.parameter: (
        setting.model | None,
        Field(None, description=f"{setting.help} (omitted: every field's default)."),
    )
    for setting in calibration_settings()
}
CalibrateParams = create_model(
    "CalibrateParams", __base__=_CalibrateBase, __doc__=_CalibrateBase.__doc__, **_KIND_OPTIONS
)


def run_calibrate(context: JobContext, params: _CalibrateBase) -> dict[str, Any]:
    """A resumed job continues the bench's unfinished calibration, if there is one (a mesh's or D2NN's fit runs
    again)."""
    bench, store = context.bench, context.store
    resume = context.resuming and store.latest_calibration(bench.name, complete=False) is not None
    record = calibrate_bench(
        bench,
        store,
        resume=resume,
        progress=_phase_progress(context),
        observe=context.measured,
        **dict(params),
    )
    report = system_kind(record.kind).calibration.report(record, store)
    return {**report.result, "artifacts": artifact_refs(store, report.files)}


# -- train ----------------------------------------------------------------------------------------------


class TrainParams(TrainConfig):
    """Train a network on the bench and store it as a model (``labsat train``): every setting of
    :class:`~labsat.training.config.TrainConfig`, plus where the data and the twin come from."""

    dataset: str = Field("digits", pattern=NAME_PATTERN, description="digits, iris, or a name under <data>/datasets/.")
    calibration: str | None = Field(None, description="Calibration to build the twin from (default: the newest).")

    def config(self) -> TrainConfig:
        """The run's settings without the job's own fields."""
        return TrainConfig.model_validate(self.model_dump(include=set(TrainConfig.model_fields)))


EPOCH_METRICS = ("epoch", "loss", "validation_accuracy", "forwards", "bench_time_s")
"""What a train job records per epoch (a ``metric`` event): mean loss, validation accuracy, device forwards and
bench time of the epoch."""


def run_train(context: JobContext, params: TrainParams) -> dict[str, Any]:
    """Progress per step, one ``metric`` per epoch; a resumed job continues from the run's last checkpoint.

    The calibration is fixed on the first attempt and remembered, because it is part of the run's
    checkpoint key: a resumed attempt must find the same checkpoints even if the bench was
    recalibrated in between.
    """
    config = params.config()
    loaded = load_dataset(dataset_source(context.store, params.dataset), seed=params.seed)
    dataset = loaded.with_validation(config.validation_fraction, config.seed)  # the steps per epoch the run takes
    bench_network(context.bench, config, dataset)  # what cannot run on this bench is refused before calibrating
    calibration = context.memo.get("calibration") or params.calibration
    if calibration is None:
        record, calibrated_now = bench_calibration(context.bench, context.store, None, _phase_progress(context))
        calibration = record.id
        if calibrated_now:
            context.log(f"bench {context.bench.name} had no calibration: calibration {record.id} ran first")
    context.remember(calibration=calibration)
    if context.resuming:
        context.log("resuming from the run's last checkpoint")
    per_epoch = -(-len(dataset.train) // config.batch_size)
    total = per_epoch * config.epochs

    def on_step(record: StepRecord) -> None:
        done = record.epoch * per_epoch + record.step + 1
        context.progress(done, total, "train", epoch=record.epoch + 1, loss=record.loss, forwards=record.cost.forwards)

    def on_epoch(row: dict[str, Any]) -> None:  # what the dashboard's live curves plot
        context.metric(**{key: row[key] for key in EPOCH_METRICS if row[key] is not None})

    run = train_on_bench(
        context.bench,
        context.store,
        config,
        dataset,
        dataset_label=params.dataset,
        calibration=calibration,
        resume=context.resuming,
        on_step=on_step,
        on_epoch=on_epoch,
    )
    controls = context.store.artifact_dir("models", run.model_id) / "controls.pt"
    return {**run.summary(), "artifacts": artifact_refs(context.store, [controls])}


# -- evaluate -------------------------------------------------------------------------------------------


class EvaluateParams(BaseModel):
    """Robustness and sharpness of stored models on the bench, side by side, as a report (``labsat evaluate``)."""

    model_config = ConfigDict(extra="forbid")

    models: Annotated[list[Annotated[str, Field(pattern=NAME_PATTERN)]], Listed] = Field(
        min_length=1, max_length=MAX_MODELS, description="Stored model ids (unique prefixes will do)."
    )
    sweeps: Annotated[list[Literal[tuple(SWEEPS)]] | None, Listed] = Field(  # type: ignore[valid-type]
        None,
        min_length=1,
        description="Perturbation sweeps (omitted: the system's own; a bank's: drift, noise, transfer).",
    )
    seeds: int = Field(3, ge=1, le=100, description="Seeds per noise/transfer point (transfer: at least 5 chips).")
    landscape_steps: int = Field(31, ge=3, le=201, description="Loss-landscape grid side (odd: θ is the centre).")

    @field_validator("landscape_steps")
    @classmethod
    def _odd(cls, steps: int) -> int:
        if steps % 2 == 0:
            raise ValueError(f"must be odd (θ is the grid's centre), got {steps}")
        return steps


def run_evaluate(context: JobContext, params: EvaluateParams) -> dict[str, Any]:
    """Progress per model; the report (HTML, JSON, PNGs) goes to the job's own artifact folder."""
    store = context.store
    settings = EvaluationSettings(
        sweeps=None if params.sweeps is None else tuple(dict.fromkeys(params.sweeps)),
        seeds=params.seeds,
        landscape_steps=params.landscape_steps,
    )

    def on_model(index: int, count: int, model_id: str, meta: dict[str, Any]) -> None:
        context.progress(index - 1, count, "evaluate", model=model_id)

    evaluations, report = evaluate_models(
        context.bench,
        store,
        params.models,
        settings,
        out=context.artifact_dir(),
        on_model=on_model,
        dataset_source=lambda label: dataset_source(store, label),
    )
    context.progress(len(evaluations), len(evaluations), "evaluate")
    files = sorted(path for path in report.parent.rglob("*") if path.is_file())
    return {**report_data(evaluations, grids=False), "artifacts": artifact_refs(store, files)}


# -- deploy ---------------------------------------------------------------------------------------------


class DeployParams(BaseModel):
    """Run a stored model on the bench: every photonic layer programmed and measured over its test split."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=NAME_PATTERN, description="Stored model id.")


def run_deploy(context: JobContext, params: DeployParams) -> dict[str, Any]:
    """On its own bench a model uses the calibration it was trained with; elsewhere, that bench's newest."""
    bench, store = context.bench, context.store
    net, meta = model_for_bench(store, params.model, bench)
    calibration = meta.get("calibration") if meta.get("bench") == bench.name else None
    physical, record, _ = bench_layer(bench, store, net.sizes[-1], calibration, _phase_progress(context))
    test = load_dataset(dataset_source(store, str(meta.get("dataset", "digits"))), seed=int(meta.get("seed", 0))).test
    context.progress(0, 1, "measure")
    before = physical.stats()
    device_accuracy = accuracy(net, test, device_runner(physical))
    context.progress(1, 1, "measure")
    return {
        "model": params.model,
        "bench": bench.name,
        "calibration": record.id,
        "dataset": meta.get("dataset"),
        "test_samples": len(test),
        "test_accuracy_device": device_accuracy,
        "trained_test_accuracy_device": meta.get("test_accuracy_device"),
        "trained_on": meta.get("bench"),
        "queries": asdict(physical.stats().since(before)),
    }


# -- sweep ----------------------------------------------------------------------------------------------

MAX_SWEEP_CELLS = 256
"""Most cells one sweep job runs (each is a training run)."""


class SweepParams(BaseModel):
    """A grid of training runs and their measures (``labsat sweep run``), submitted as its spec.

    With ``inline`` and ``local`` the cells train on private simulated benches, never on this service's bench,
    so such a sweep cannot write an instrument; the job holds its bench's queue while it runs. ``inline`` runs
    the cells one after another inside the service (a cancel or pause takes effect between two cells);
    ``local`` spreads them over a pool of ``workers`` processes, and a cancel then lets the running cells
    finish. ``bench`` trains every cell on this service's own bench (real hardware), one after another,
    through its guard, with the twin of its newest calibration: only the device's measures (accuracy,
    forwards, bench_time, wall), and the spec names no bench. Ray on a lab's cluster is the command line's
    (``--address``): a REST client cannot make the service connect to a host.
    """

    model_config = ConfigDict(extra="forbid")

    spec: SweepSpec = Field(description="The sweep spec, as in a sweep YAML file.")
    engine: Literal["inline", "local", "bench"] = Field(
        "inline", description="inline (simulated, in the service), local (simulated, a pool) or bench (this bench)."
    )
    workers: int = Field(2, ge=1, le=8, description="Pool processes (engine local).")

    @model_validator(mode="after")
    def _bench_sweeps_take_device_measures(self) -> SweepParams:
        if self.engine != "bench":
            return self
        if self.spec.bench != DEFAULT_BENCH:
            raise ValueError(f"engine 'bench' trains on this service's bench; the spec names {self.spec.bench!r}")
        beyond = [m for m in self.spec.measure if m not in DEVICE_MEASURES]
        if beyond:
            raise ValueError(
                f"engine 'bench' takes only the device's measures ({', '.join(sorted(DEVICE_MEASURES))}); "
                f"{', '.join(beyond)} need a simulated chip"
            )
        return self

    @field_validator("spec")
    @classmethod
    def _bounded_and_named(cls, spec: SweepSpec) -> SweepSpec:
        count = len(cells(spec))
        if count > MAX_SWEEP_CELLS:
            raise ValueError(f"the grid has {count} cells; a sweep job runs at most {MAX_SWEEP_CELLS}")
        if not re.match(NAME_PATTERN, spec.dataset):
            raise ValueError(f"dataset {spec.dataset!r}: digits, iris, or a name under <data>/datasets/")
        return spec


def run_sweep_job(context: JobContext, params: SweepParams) -> dict[str, Any]:
    """Progress per stored cell; a resumed job skips the cells an earlier attempt stored."""
    out = context.artifact_dir()
    spec = params.spec.model_copy(update={"dataset": str(dataset_source(context.store, params.spec.dataset))})

    def on_cell(counts: dict[str, int], total: int) -> None:
        done = counts["skipped"] + counts["ok"] + counts["failed"]
        context.progress(done, total, "cells", ok=counts["ok"], failed=counts["failed"])

    on_bench = (context.bench, context.store) if params.engine == "bench" else None
    counts = run_sweep(
        spec, out, engine=params.engine, workers=params.workers, show_progress=False, on_cell=on_cell, bench=on_bench
    )
    data = sweep_dataset(spec, out)
    files = [write_netcdf(data, out / "results.nc"), write_csv(data, out / "results.csv"), *line_plots(data, out)]
    return {"cells": len(cells(spec)), **counts, "artifacts": artifact_refs(context.store, files)}


# -- relock ---------------------------------------------------------------------------------------------


class RelockParams(BaseModel):
    """Re-lock a stored model to the chip's drift from a short pilot measurement and store the result as a new
    model (``labsat relock``)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=NAME_PATTERN, description="Stored model id.")
    pilot: int = Field(32, ge=1, le=MAX_PILOT, description="Unlabelled training images in the pilot pass.")
    solve_steps: int = Field(
        SOLVE_STEPS, ge=1, le=MAX_SOLVE_STEPS, description="Adam steps re-solving each layer's controls on the twin."
    )
    measure: bool = Field(
        False, description="Also measure the device test accuracy before and after (more device queries)."
    )


def run_relock(context: JobContext, params: RelockParams) -> dict[str, Any]:
    """Progress before and after; the result reports the fitted ΔT and the pilot's device queries."""
    store = context.store
    context.progress(0, 1, "relock", model=params.model)
    run = relock_on_bench(
        context.bench,
        store,
        params.model,
        pilot=params.pilot,
        solve_steps=params.solve_steps,
        measure=params.measure,
        dataset_source=lambda label: dataset_source(store, label),
    )
    context.progress(1, 1, "relock", model=run.model_id)
    controls = store.artifact_dir("models", run.model_id) / "controls.pt"
    return {**run.summary(), "artifacts": artifact_refs(store, [controls])}


CALIBRATE = register(
    JobKind("calibrate", CalibrateParams, run_calibrate, "Calibrate the bench and fit its twin.", resumable=True)
)
TRAIN = register(JobKind("train", TrainParams, run_train, "Train a network and store the model.", resumable=True))
EVALUATE = register(JobKind("evaluate", EvaluateParams, run_evaluate, "Evaluate stored models; write a report."))
DEPLOY = register(JobKind("deploy", DeployParams, run_deploy, "Run a stored model on the bench."))
SWEEP = register(
    JobKind("sweep", SweepParams, run_sweep_job, "Run a grid of training runs on simulated benches.", resumable=True)
)
RELOCK = JobKind("relock", RelockParams, run_relock, "Re-lock a stored model to the chip's drift; store it.")
"""Published through the ``labsat.jobs`` entry point ``relock`` (pyproject.toml), as a lab's own kind would be:
``labsat serve`` registers it with every other installed kind."""
