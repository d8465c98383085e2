"""Perturbation sweeps and confusion matrices on a toy predictor whose accuracy is known exactly."""

from __future__ import annotations

import statistics

import pytest
import torch
from torch import Tensor

from labsat.evaluation import (
    Classifier,
    confusion,
    confusion_matrix,
    drift_sweep,
    run_sweep,
    transfer_sweep,
)
from labsat.evaluation.sweeps import DRIFT, TRANSFER, SweepSpec

N, CLASSES = 40, 4
X = torch.arange(N, dtype=torch.float32).unsqueeze(1)
Y = torch.arange(N) % CLASSES
TOY = SweepSpec("toy", "toy perturbation", "", (0.0, 0.5, 1.0))


def toy_accuracy(value: float, seed: int) -> float:
    """What the toy system scores at ``value`` with seed ``seed``: a whole number of samples out of N."""
    return round(N * (1 - value * (seed + 1) / 4)) / N


class Toy:
    """A perturbed-model factory that gets the first ``k`` samples right; records the seeds it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, int]] = []

    def __call__(self, value: float, generator: torch.Generator) -> Classifier:
        seed = generator.initial_seed()
        self.calls.append((value, seed))
        correct = round(N * toy_accuracy(value, seed))

        def classify(x: Tensor) -> Tensor:
            index = x[:, 0].long()
            labels = index % CLASSES
            wrong = (labels + 1) % CLASSES
            return torch.nn.functional.one_hot(torch.where(index < correct, labels, wrong), CLASSES).float()

        return classify


def test_mean_and_std_over_seeds_are_exact() -> None:
    result = run_sweep(TOY, Toy(), X, Y, seeds=3)
    assert result.values == (0.0, 0.5, 1.0)
    assert result.seeds == (0, 1, 2)
    for i, value in enumerate(result.values):
        scores = [toy_accuracy(value, seed) for seed in result.seeds]
        assert result.accuracy[i].tolist() == pytest.approx(scores)
        assert float(result.mean[i]) == pytest.approx(statistics.mean(scores))
        assert float(result.std[i]) == pytest.approx(statistics.stdev(scores))
    assert result.worst == pytest.approx(statistics.mean(toy_accuracy(1.0, s) for s in range(3)))
    summary = result.as_dict()
    assert summary["sweep"] == "toy" and len(summary["mean"]) == 3 and len(summary["accuracy"][0]) == 3


def test_every_value_sees_the_same_seeds_and_batches_see_one_draw() -> None:
    toy = Toy()
    batched = run_sweep(TOY, toy, X, Y, seeds=2, seed=5, batch_size=7)
    assert toy.calls == [(v, s) for v in TOY.values for s in (5, 6)]  # one draw per point, common seeds
    torch.testing.assert_close(batched.accuracy, run_sweep(TOY, Toy(), X, Y, seeds=2, seed=5).accuracy)


def test_a_single_seed_has_zero_spread_and_values_can_be_overridden() -> None:
    result = drift_sweep(Toy(), X, Y, seeds=1, values=[0.0, 0.25])
    assert result.spec.name == DRIFT.name and result.values == (0.0, 0.25)
    assert result.std.tolist() == [0.0, 0.0]


def test_transfer_needs_five_fresh_chips_per_point() -> None:
    with pytest.raises(ValueError, match="at least 5"):
        transfer_sweep(Toy(), X, Y, seeds=3)
    toy = Toy()
    result = transfer_sweep(toy, X, Y, values=[0.0])
    assert len(result.seeds) == TRANSFER.min_seeds == 5
    assert len({seed for _, seed in toy.calls}) == 5


def test_confusion_matrix_counts_true_rows_and_predicted_columns() -> None:
    matrix = confusion_matrix(torch.tensor([0, 1, 1, 2, 2, 2]), torch.tensor([0, 1, 2, 2, 2, 0]), num_classes=3)
    assert matrix.tolist() == [[1, 0, 1], [0, 1, 0], [0, 1, 2]]
    result = confusion(Toy(), X, Y, value=1.0, seed=1, condition="toy at 1")
    assert result.matrix.sum() == N
    assert result.accuracy == pytest.approx(toy_accuracy(1.0, 1))
    assert result.as_dict()["condition"] == "toy at 1"
