"""Evaluating stored models on an open bench, end to end: what ``labsat evaluate`` and the job worker call.

For each model: its run settings (:mod:`labsat.evaluation.provenance`) and its dataset's class count (the
chance line), the chips of the bench read out with the calibration the model was trained with (on its
own bench; another bench's newest otherwise), the perturbation sweeps, sharpness, landscape and
confusion on those chips (:func:`~labsat.evaluation.photonic.evaluate_network`), and the accuracy
measured on the device itself. Then one report for all of them, side by side.

What is measured is the bench's system kind's (:attr:`SystemKind.evaluation
<labsat.systems.kind.SystemKind.evaluation>`): on an MZI mesh or a D2NN bench a model is measured on the
device and its calibrated twin, plus a D2NN's mask-rotation sweep on the twin (:mod:`labsat.evaluation.layer`
says why). A sweep the kind does not run, and a model trained on another kind of system, are refused before
anything is measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labsat.datasets import load_dataset
from labsat.evaluation.photonic import EvaluationSettings, StoredNetwork
from labsat.evaluation.provenance import run_settings
from labsat.evaluation.report import ModelEvaluation, write_report
from labsat.store import Store, new_id
from labsat.systems.kind import UnsupportedSystem, bench_kind
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
    Returns the evaluations and the report's path. ``settings.sweeps`` None: the sweeps the bench's kind
    runs by default; one it does not run is refused.
    """
    kind = bench_kind(bench).evaluation
    sweeps = kind.default_sweeps if settings.sweeps is None else settings.sweeps
    unsupported = [name for name in sweeps if name not in kind.sweeps]
    if unsupported:
        raise UnsupportedSystem(
            f"sweep {', '.join(map(repr, unsupported))}: not run on a {bench.spec.system.label} (bench "
            f"{bench.name!r}); its sweeps: {', '.join(kind.sweeps) or 'none'}"
        )
    settings = replace(settings, sweeps=sweeps)
    models = {model_id: model_for_bench(store, model_id, bench) for model_id in dict.fromkeys(model_ids)}
    evaluations = []
    for index, (model_id, (net, meta)) in enumerate(models.items(), start=1):
        if on_model is not None:
            on_model(index, len(models), model_id, meta)
        dataset = load_dataset(dataset_source(meta.get("dataset", "digits")), seed=int(meta.get("seed", 0)))
        evaluation = kind.evaluate(bench, store, StoredNetwork(model_id, net, meta, dataset.test), settings)
        evaluation.settings = run_settings(meta)
        evaluation.classes = dataset.n_classes
        evaluation.metadata["test_samples"] = len(dataset.test)
        evaluations.append(evaluation)
    return evaluations, write_report(evaluations, out or store.artifact_dir("evaluations", new_id()))
