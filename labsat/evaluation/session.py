"""Evaluating stored models on an open bench, end to end: what ``labsat evaluate`` and the job worker call.

For each model: the chips of the bench read out with the calibration the model was trained with (on its
own bench; another bench's newest otherwise), the perturbation sweeps, sharpness, landscape and
confusion on those chips (:func:`~labsat.evaluation.photonic.evaluate_network`), and the accuracy
measured on the device itself. Then one report for all of them, side by side.

On an MZI mesh or a D2NN bench a model is measured on the device and its calibrated twin, plus a D2NN's
mask-rotation sweep on the twin (:mod:`labsat.evaluation.layer` says why); a model trained on another
kind of system is refused before anything is measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labsat.datasets import load_dataset
from labsat.evaluation.chips import bench_chips
from labsat.evaluation.layer import evaluate_on_layer
from labsat.evaluation.photonic import EvaluationSettings, evaluate_network
from labsat.evaluation.report import ModelEvaluation, write_report
from labsat.store import Store, new_id
from labsat.systems.mrr import MRRBankSystem
from labsat.training.evaluate import accuracy
from labsat.training.session import model_for_bench

if TYPE_CHECKING:
    from labsat.bench import Bench

ModelProgress = Callable[[int, int, str, dict[str, Any]], None]
"""``on_model(index, count, model_id, metadata)``, called before each model (index from 1)."""


def evaluate_models(
    bench: Bench,
    store: Store,
    model_ids: Sequence[str],
    settings: EvaluationSettings,
    *,
    out: Path | None = None,
    on_model: ModelProgress | None = None,
    dataset_source: Callable[[str], str | Path] = lambda label: label,
) -> tuple[list[ModelEvaluation], Path]:
    """Evaluate each stored model on ``bench`` and write the report (default: a new evaluations artifact folder).

    ``dataset_source`` maps a model's dataset label to what :func:`~labsat.datasets.load_dataset` opens.
    Returns the evaluations and the report's path.
    """
    models = {model_id: model_for_bench(store, model_id, bench) for model_id in dict.fromkeys(model_ids)}
    evaluations = []
    for index, (model_id, (net, meta)) in enumerate(models.items(), start=1):
        if on_model is not None:
            on_model(index, len(models), model_id, meta)
        test = load_dataset(dataset_source(meta.get("dataset", "digits")), seed=int(meta.get("seed", 0))).test
        if not isinstance(bench.system, MRRBankSystem):
            evaluations.append(evaluate_on_layer(bench, store, model_id, net, meta, test, settings))
            continue
        same_bench = meta.get("bench") == bench.name
        chips = bench_chips(bench, store, meta.get("calibration") if same_bench else None)
        evaluation = evaluate_network(
            f"{meta.get('method', 'model')} {model_id}",
            net,
            chips.layer,
            test,
            method=meta.get("method", ""),
            chips=chips.chips,
            settings=settings,
            metadata={"model": model_id, "bench": bench.name, "evaluated_on": chips.source},
        )
        evaluation.device_accuracy = accuracy(net, test, lambda _index, x, theta: bench.system.forward(x, theta))
        evaluations.append(evaluation)
    return evaluations, write_report(evaluations, out or store.artifact_dir("evaluations", new_id()))
