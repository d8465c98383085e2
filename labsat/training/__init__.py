"""Training photonic networks on a physical system: one loop, interchangeable gradient sources, SAT on top.

Public API (what the CLI, the job worker and :mod:`labsat.evaluation` use):

* :class:`PhysicalLayer` — the device/twin pair training talks to (``PhysicalLayer.from_system``).
* :class:`PhotonicNet` — the network; ``net(x, runner)`` with a :data:`LayerRunner` saying where the
  photonic layers run: :func:`device_runner`, :func:`twin_runner`, :func:`pat_runner`, …
* :class:`TrainConfig`, :func:`train` (or :class:`Trainer` step by step) -> :class:`TrainResult`.
* :func:`accuracy` / :func:`predict` of a network on a split with any runner.
* :func:`train_on_bench` (twin, training, device test, stored model) and :func:`load_model`.
"""

from labsat.training.config import TrainConfig
from labsat.training.evaluate import accuracy, predict
from labsat.training.loop import StepRecord, Trainer, TrainingError, TrainResult, train
from labsat.training.methods import ASCENTS, METHODS, Method, parse_method
from labsat.training.network import LayerRunner, PhotonicNet
from labsat.training.pat import pat_runner, physics_aware
from labsat.training.physical import LayerFn, PhysicalLayer
from labsat.training.runners import device_runner, ideal_runner, twin_runner
from labsat.training.session import TrainingRun, load_model, train_on_bench

__all__ = [
    "ASCENTS",
    "METHODS",
    "LayerFn",
    "LayerRunner",
    "Method",
    "PhotonicNet",
    "PhysicalLayer",
    "StepRecord",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "TrainingRun",
    "accuracy",
    "device_runner",
    "ideal_runner",
    "load_model",
    "parse_method",
    "pat_runner",
    "physics_aware",
    "predict",
    "train",
    "train_on_bench",
    "twin_runner",
]
