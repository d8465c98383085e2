"""Evaluating a stored model on an MZI mesh bench: its accuracy on the device and on the calibrated twin.

The rest of ``labsat evaluate`` is taken on a bank's chip model (:mod:`labsat.evaluation.chips`): its
drift sweep warms ring resonances by kelvins, its transfer sweep draws fresh chips with a bank's
fabrication spread in nm, and sharpness, the landscape and the confusion matrix (at −1 K) come from the
same model. A mesh has no thermal model and its fabrication spread is σ_ph/σ_bs, so none of those has a
mesh meaning yet; rather than report numbers of the wrong system, a mesh evaluation measures what it
can and says in its ``notes`` what it did not run. ``benchmarks/bench_mzi.py`` runs a mesh's transfer
sweep (fresh meshes at σ_ph = σ_bs = σ).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labsat.datasets import Split
from labsat.evaluation.photonic import EvaluationSettings
from labsat.evaluation.report import ModelEvaluation
from labsat.store import Store
from labsat.training.evaluate import accuracy
from labsat.training.network import PhotonicNet
from labsat.training.runners import device_runner, twin_runner
from labsat.training.session import bench_layer

if TYPE_CHECKING:
    from labsat.bench import Bench

BANK_ONLY = ("sharpness", "landscape", "confusion")
"""What ``evaluate`` takes on a bank's chip model besides the requested sweeps, and so not on a mesh."""


def evaluate_on_mesh(
    bench: Bench,
    store: Store,
    model_id: str,
    net: PhotonicNet,
    metadata: dict[str, Any],
    test: Split,
    settings: EvaluationSettings,
) -> ModelEvaluation:
    """``net`` on the mesh of ``bench`` and on its twin, with the calibration it was trained with (on its own bench).

    ``accuracy`` is the calibrated twin's, ``device_accuracy`` the device's over the whole test split.
    """
    same_bench = metadata.get("bench") == bench.name
    physical, record, _ = bench_layer(bench, store, net.sizes[-1], metadata.get("calibration") if same_bench else None)
    device_accuracy = accuracy(net, test, device_runner(physical))
    twin_accuracy = accuracy(net, test, twin_runner(physical))
    not_run = [*(f"{sweep} sweep" for sweep in settings.sweeps), *BANK_ONLY]
    note = (
        f"not run on a {bench.spec.system.label}: {', '.join(not_run)} (labsat evaluate takes them on an MRR "
        "bank's chip model: drift in K, fabrication spread in nm); 'accuracy' is the calibrated twin's. "
        "benchmarks/bench_mzi.py runs a mesh's transfer sweep."
    )
    return ModelEvaluation(
        name=f"{metadata.get('method', 'model')} {model_id}",
        method=metadata.get("method", ""),
        accuracy=twin_accuracy,
        device_accuracy=device_accuracy,
        metadata={
            "model": model_id,
            "bench": bench.name,
            "evaluated_on": f"the mesh itself and the twin of its calibration {record.id}",
        },
        notes=[note],
    )
