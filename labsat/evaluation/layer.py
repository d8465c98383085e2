"""Evaluating a stored model on a mesh or D2NN bench: accuracy on the device and on the calibrated twin, and the
sweep the system has.

The rest of ``labsat evaluate`` is taken on a bank's chip model (:mod:`labsat.evaluation.chips`): its
drift sweep warms ring resonances by kelvins, its transfer sweep draws fresh chips with a bank's
fabrication spread in nm, and sharpness, the landscape and the confusion matrix (at −1 K) come from the
same model. A mesh has no thermal model and its fabrication spread is σ_ph/σ_bs; a D2NN has neither. So
rather than report numbers of the wrong system, an evaluation here measures what it can and says in its
``notes`` what it did not run.

What it can: the accuracy on the device itself and on the twin (the layer :func:`bench_layer
<labsat.training.session.bench_layer>` builds, with the calibration the model was trained with on its own
bench), and, for a system whose layer has disturbance parameters (a D2NN's masks:
:attr:`PhysicalLayer.disturbed <labsat.training.physical.PhysicalLayer.disturbed>`), the ``misalignment``
sweep: the twin's accuracy with both masks rotated, the disturbance FD-SAT trains against. It is taken on
the twin because nothing on a bench turns the mask SLMs. Each kind names the sweeps it runs
(:class:`LayerEvaluation`), and where its fuller comparison is: ``benchmarks/bench_mzi.py`` runs a mesh's
transfer sweep and ``benchmarks/bench_d2nn.py`` compares BP with SAT + FD-SAT under rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labsat.datasets import Split
from labsat.evaluation.photonic import EvaluationSettings, StoredNetwork
from labsat.evaluation.report import ModelEvaluation
from labsat.evaluation.sweeps import MISALIGNMENT, SWEEPS, Classifier, PerturbedModel, SweepResult, run_sweep
from labsat.store import Store
from labsat.training.evaluate import EVAL_BATCH, accuracy
from labsat.training.network import PhotonicNet
from labsat.training.physical import PhysicalLayer
from labsat.training.runners import device_runner, twin_runner
from labsat.training.session import bench_layer

if TYPE_CHECKING:
    from labsat.bench import Bench

BANK_ONLY = ("sharpness", "landscape", "confusion")
"""What ``evaluate`` takes on a bank's chip model besides the requested sweeps, and so not here."""

ROTATION = "rotation"
"""The disturbance the misalignment sweep moves (:data:`~labsat.physics.diffractive.DISTURBANCES`)."""


def misalignment_model(net: PhotonicNet, physical: PhysicalLayer) -> PerturbedModel:
    """``net`` on the twin of ``physical`` with every mask rotated by ``value`` degrees; deterministic."""
    disturbed = physical.disturbed
    assert disturbed is not None

    def perturbed(rotation_deg: float, _generator: Any) -> Classifier:
        run = twin_runner(disturbed({ROTATION: rotation_deg}))
        return lambda x: net(x, run)

    return perturbed


def misalignment_sweep(net: PhotonicNet, physical: PhysicalLayer, test: Split, seed: int = 0) -> SweepResult:
    """The twin's accuracy on ``test`` at each rotation of :data:`~labsat.evaluation.sweeps.MISALIGNMENT`."""
    perturbed = misalignment_model(net, physical)
    return run_sweep(MISALIGNMENT, perturbed, test.x, test.y, seeds=1, seed=seed, batch_size=EVAL_BATCH)


def evaluate_on_layer(
    bench: Bench, store: Store, model: StoredNetwork, settings: EvaluationSettings, benchmark: str = ""
) -> ModelEvaluation:
    """``model`` on the device of ``bench`` and on its twin, with the calibration it was trained with there.

    ``accuracy`` is the calibrated twin's, ``device_accuracy`` the device's over the whole test split; the
    misalignment sweep runs where ``settings`` asks for it and the layer has disturbances. ``benchmark``
    says in the notes where the system's fuller comparison is.
    """
    net, test = model.net, model.test
    physical, record, _ = bench_layer(bench, store, net.sizes[-1], model.calibration_on(bench.name))
    device_accuracy = accuracy(net, test, device_runner(physical))
    twin_accuracy = accuracy(net, test, twin_runner(physical))
    sweeps = {}
    if physical.disturbed is not None and MISALIGNMENT.name in (settings.sweeps or ()):
        sweeps[MISALIGNMENT.name] = misalignment_sweep(net, physical, test, settings.seed)
    label = bench.spec.system.label
    not_run = [*(f"{sweep} sweep" for sweep in SWEEPS if sweep not in sweeps), *BANK_ONLY]
    notes = [
        f"not run on a {label}: {', '.join(not_run)} (labsat evaluate takes them on an MRR bank's chip model: "
        "drift in K, fabrication spread in nm); 'accuracy' is the twin's, with the calibration in evaluated_on. "
        + benchmark
    ]
    if sweeps:
        notes.append(
            f"the misalignment sweep is the twin's accuracy with both masks of the {label} rotated (nothing on a "
            "bench turns the mask SLMs): the disturbance FD-SAT (--fd-disturbance rotation) trains against."
        )
    return ModelEvaluation(
        name=model.name,
        method=model.metadata.get("method", ""),
        accuracy=twin_accuracy,
        device_accuracy=device_accuracy,
        sweeps=sweeps,
        metadata={
            "model": model.model_id,
            "bench": bench.name,
            "evaluated_on": f"the {label} itself and the twin of its calibration {record.id}",
        },
        notes=notes,
    )


@dataclass(frozen=True)
class LayerEvaluation:
    """The evaluation part of a kind measured on its device and twin (:class:`~labsat.systems.kind.Evaluation`)."""

    sweeps: tuple[str, ...] = ()
    """The sweeps it runs: ``misalignment`` where its layer has disturbances, else none."""
    benchmark: str = ""
    """Where the system's fuller comparison is, for the notes."""

    @property
    def default_sweeps(self) -> tuple[str, ...]:
        return self.sweeps

    def evaluate(
        self, bench: Bench, store: Store, model: StoredNetwork, settings: EvaluationSettings
    ) -> ModelEvaluation:
        return evaluate_on_layer(bench, store, model, settings, self.benchmark)
