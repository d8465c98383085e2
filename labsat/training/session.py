"""A training run on an open bench, end to end: twin, training, device test, stored model.

This is what ``labsat train`` (and later the job worker) calls; the CLI only renders it. Choices made
here, once for every caller:

* **Twin.** ``calibration`` names a record to use; without it the bench's newest finished calibration of
  these very instruments is used, and **if the bench has none, a full calibration runs first** (and is
  stored, so the next run reuses it). Every method needs a twin — in-silico methods train on it, PAT and
  DAT take their backward pass from it, weight-space BP is deployed through it — and a calibration is
  the only way labsat makes one, so refusing would just make the user type a second command. The
  calibration drives the heaters through the same guard as training.
* **System.** The bench's system kind (:attr:`SystemKind.training <labsat.systems.kind.SystemKind.training>`)
  says how it trains: a bank's twin is built from its record (:mod:`labsat.twin`) and trained in heater
  volts; a mesh's is its fit applied to the System and trained in phase (:mod:`labsat.training.mzi`); a
  D2NN's System shows phases through its record's fitted SLM LUTs, so the nominal twin models it, and is
  trained in mask phase (:mod:`labsat.training.diffractive`). Each gets the network it affords
  (:func:`bench_network`), and what cannot run on it is refused before any calibration or device time.
  :func:`bench_layer` hides which system it is: the rest of a run, and evaluation and deployment after
  it, see one :class:`PhysicalLayer`.
* **Result.** Accuracy is measured on the device over the full test split after training (the number
  that matters), and on the twin for comparison; the trained network is saved in the store as a model
  whose tensors are the photonic controls and the digital parameters. The validation split (held out of
  the training split, :meth:`Dataset.with_validation <labsat.datasets.Dataset.with_validation>`) is measured
  on the device too: it, not the test split, is what settings are compared by. A NAT run's noise model
  (every σ it injected and where it came from) is stored with the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labsat.calibration import bench_identity, calibrate_bench, record_type
from labsat.calibration.record import CalibrationRecord
from labsat.calibration.stored import StoredCalibration, latest_record_of
from labsat.datasets import Dataset
from labsat.errors import LabsatError
from labsat.readout import QueryStats
from labsat.store import Store
from labsat.systems.kind import bench_kind, system_of
from labsat.systems.mrr import MRRBankSystem
from labsat.training.checkpoint import run_directory
from labsat.training.config import TrainConfig
from labsat.training.evaluate import accuracy
from labsat.training.loop import EpochCallback, StepCallback, TrainResult, train
from labsat.training.methods import parse_method
from labsat.training.network import PhotonicNet
from labsat.training.physical import PhysicalLayer
from labsat.training.runners import device_runner, twin_runner
from labsat.twin import Twin, apply_calibration

if TYPE_CHECKING:
    from labsat.bench import Bench

CalibrationProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TrainingRun:
    """What a finished run reports (and ``--json`` prints)."""

    model_id: str
    calibration_id: str
    calibrated_now: bool
    bench: str
    dataset: str
    config: TrainConfig
    result: TrainResult
    device_accuracy: float
    twin_accuracy: float
    evaluation_cost: QueryStats
    checkpoint_dir: Path
    validation_accuracy_device: float | None = None
    """Device accuracy on the validation split after training (None: no validation split)."""

    def summary(self) -> dict[str, Any]:
        cost = self.result.cost
        steps = max(len(self.result.steps), 1)
        return {
            "model": self.model_id,
            "calibration": self.calibration_id,
            "calibrated_now": self.calibrated_now,
            "bench": self.bench,
            "dataset": self.dataset,
            "method": self.config.method,
            "ascent": self.config.parsed.ascent,
            "seed": self.config.seed,
            "epochs": self.config.epochs,
            "steps": len(self.result.steps),
            "final_loss": self.result.epoch_losses()[-1] if self.result.steps else None,
            "test_accuracy_device": self.device_accuracy,
            "test_accuracy_twin": self.twin_accuracy,
            "validation_accuracy_device": self.validation_accuracy_device,
            "validation_accuracy": self.result.validation_accuracy,
            "nat_noise": None if self.result.noise is None else self.result.noise.as_dict(),
            "queries": asdict(cost),
            "queries_per_step": {key: value / steps for key, value in asdict(cost).items()},
            "evaluation_queries": asdict(self.evaluation_cost),
            "per_epoch": self.result.per_epoch(),
            "wall_s": self.result.wall_s,
            "checkpoints": str(self.checkpoint_dir),
            "settings": self.config.settings(),
        }


def bench_calibration(
    bench: Bench, store: Store, calibration: str | None = None, progress: CalibrationProgress | None = None
) -> tuple[StoredCalibration, bool]:
    """The calibration to train with and whether it had to run now (see module doc), of the bench's kind."""
    kind = record_type(bench)
    if calibration is not None:
        record = store.get_calibration(calibration)
        if record.bench != bench.name:
            raise LabsatError(f"calibration {calibration} belongs to bench {record.bench!r}, not {bench.name!r}")
        if not isinstance(record, kind):
            raise LabsatError(
                f"calibration {calibration} is a {record.kind} calibration; bench {bench.name!r} is now a "
                f"{bench.spec.system.label}"
            )
        return record, False
    try:
        return latest_record_of(store, bench.name, bench_identity(bench), kind), False
    except LabsatError:
        return calibrate_bench(bench, store, progress=progress), True


def bench_twin(
    bench: Bench, store: Store, calibration: str | None = None, progress: CalibrationProgress | None = None
) -> tuple[Twin, CalibrationRecord, bool]:
    """A bank's twin to train with, its record, and whether a calibration had to run for it (see module doc).

    :func:`bench_layer` gives the layer any bench trains through.
    """
    system = system_of(bench, MRRBankSystem)
    record, calibrated_now = bench_calibration(bench, store, calibration, progress)
    assert isinstance(record, CalibrationRecord)  # a bank's calibration record
    apply_calibration(system, record)
    return Twin.from_record(record, bench.torch_device), record, calibrated_now


def bench_layer(
    bench: Bench,
    store: Store,
    outputs: int,
    calibration: str | None = None,
    progress: CalibrationProgress | None = None,
) -> tuple[PhysicalLayer, StoredCalibration, bool]:
    """The bench as training sees it (device and calibrated twin), its calibration, and whether that ran now.

    The calibration's readout (a D2NN's: its SLM LUTs) is applied to the System, so device and twin answer
    in the same units. ``outputs`` is the network's last width: a mesh reads that many of its modes, a D2NN
    that many of its detectors; a bank tiles any width.
    """
    record, calibrated_now = bench_calibration(bench, store, calibration, progress)
    return bench_kind(bench).training.layer(bench, record, outputs), record, calibrated_now


def bench_network(bench: Bench, config: TrainConfig, dataset: Dataset) -> TrainConfig:
    """``config`` fitted to ``bench``'s system and ``dataset``; what cannot run there is refused now, before any
    calibration or device time (a bad method, a mesh's or a D2NN's misfits, FD-SAT where nothing is disturbed).
    """
    parse_method(config.method, config.ascent)
    training = bench_kind(bench).training
    if config.fd_disturbance is not None and config.fd_disturbance not in training.disturbances:
        known = training.disturbances
        has = f"whose disturbances are {', '.join(known)}" if known else "which has none"
        raise LabsatError(
            f"FD-SAT (fd_disturbance {config.fd_disturbance!r}) cannot train against that on bench {bench.name!r}: "
            f"it is a {bench.spec.system.label}, {has}"
        )
    return training.network(bench, config, dataset)


def train_on_bench(
    bench: Bench,
    store: Store,
    config: TrainConfig,
    dataset: Dataset,
    *,
    dataset_label: str,
    calibration: str | None = None,
    resume: bool = False,
    on_step: StepCallback | None = None,
    on_epoch: EpochCallback | None = None,
    on_calibration: CalibrationProgress | None = None,
) -> TrainingRun:
    """Train ``config`` on ``bench`` and store the model; checkpoints go under the store's data directory."""
    config = bench_network(bench, config, dataset)
    physical, record, calibrated_now = bench_layer(bench, store, dataset.n_classes, calibration, on_calibration)
    checkpoints = run_directory(store.root, bench.name, dataset_label, {**config.settings(), "calibration": record.id})
    dataset = dataset.with_validation(config.validation_fraction, config.seed)  # the split the run trains beside
    result = train(
        config, physical, dataset, checkpoints=checkpoints, resume=resume, on_step=on_step, on_epoch=on_epoch
    )
    before = physical.stats()
    device_accuracy = accuracy(result.net, dataset.test, device_runner(physical))
    validation = dataset.validation
    validation_device = None if validation is None else accuracy(result.net, validation, device_runner(physical))
    evaluation_cost = physical.stats().since(before)
    twin_accuracy = accuracy(result.net, dataset.test, twin_runner(physical))
    run = TrainingRun(
        model_id="",
        calibration_id=record.id,
        calibrated_now=calibrated_now,
        bench=bench.name,
        dataset=dataset_label,
        config=config,
        result=result,
        device_accuracy=device_accuracy,
        twin_accuracy=twin_accuracy,
        evaluation_cost=evaluation_cost,
        checkpoint_dir=checkpoints,
        validation_accuracy_device=validation_device,
    )
    metadata = {key: value for key, value in run.summary().items() if key != "model"}
    metadata["sizes"] = list(result.net.sizes)
    metadata["system"] = bench.spec.system.type
    model_id = store.save_model(bench.name, config.method, result.net.snapshot(), metadata)
    return replace(run, model_id=model_id)


def load_model(store: Store, model_id: str) -> tuple[PhotonicNet, dict[str, Any]]:
    """A stored model as a network (controls and digital parameters) plus its metadata."""
    stored = store.get_model(model_id)
    sizes = stored.metadata.get("sizes")
    if sizes is None:
        raise LabsatError(f"model {model_id} was not saved by labsat training (its metadata has no layer sizes)")
    return PhotonicNet.from_snapshot(sizes, stored.controls), stored.metadata


def model_for_bench(store: Store, model_id: str, bench: Bench) -> tuple[PhotonicNet, dict[str, Any]]:
    """A stored model to run on ``bench``; refused if it was trained on another kind of system.

    A bank's controls are heater volts per weight, a mesh's are phases per MZI, a D2NN's phases per mask
    pixel: on another system they mean nothing (or do not even fit its shape).
    """
    net, metadata = load_model(store, model_id)
    trained_on = metadata.get("system", "mrr_bank")  # models stored before meshes were trained are a bank's
    if trained_on != bench.spec.system.type:
        raise LabsatError(
            f"model {model_id} was trained on bench {metadata.get('bench')!r}, a system of type {trained_on!r}; "
            f"bench {bench.name!r} is a {bench.spec.system.label} ({bench.spec.system.type!r}), where its controls "
            "mean nothing"
        )
    return net, metadata
