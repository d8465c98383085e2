"""Robustness evaluation: sharpness, loss landscapes, perturbation sweeps, confusion matrices, reports.

Everything here works on small callables, never on a particular system: a loss of a flat control
vector (for the Hessian and the landscape) and a perturbed-model factory (for sweeps and confusion
matrices). A simulator, a twin or a real bench plugs in by providing those.
"""

from __future__ import annotations

from labsat.evaluation.confusion import Confusion, confusion, confusion_matrix
from labsat.evaluation.flat import FlatControls, LossFn
from labsat.evaluation.hessian import (
    Eigenpairs,
    ExtremeEigenvalues,
    HessianOperator,
    Sharpness,
    TraceEstimate,
    extreme_eigenvalues,
    hutchinson_trace,
    sharpness,
    top_eigenpairs,
)
from labsat.evaluation.landscape import Landscape, filter_normalize, loss_landscape
from labsat.evaluation.report import ModelEvaluation, Table, report_data, report_tables, write_report
from labsat.evaluation.sweeps import (
    SWEEPS,
    Classifier,
    PerturbedModel,
    SweepResult,
    SweepSpec,
    accuracy,
    drift_sweep,
    noise_sweep,
    run_sweep,
    transfer_sweep,
)

__all__ = [
    "SWEEPS",
    "Classifier",
    "Confusion",
    "Eigenpairs",
    "ExtremeEigenvalues",
    "FlatControls",
    "HessianOperator",
    "Landscape",
    "LossFn",
    "ModelEvaluation",
    "PerturbedModel",
    "Sharpness",
    "SweepResult",
    "SweepSpec",
    "Table",
    "TraceEstimate",
    "accuracy",
    "confusion",
    "confusion_matrix",
    "drift_sweep",
    "extreme_eigenvalues",
    "filter_normalize",
    "hutchinson_trace",
    "loss_landscape",
    "noise_sweep",
    "report_data",
    "report_tables",
    "run_sweep",
    "sharpness",
    "top_eigenpairs",
    "transfer_sweep",
    "write_report",
]
