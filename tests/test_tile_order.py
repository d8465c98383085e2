"""Tile order: the MRR bank visits a layer's tiles in a shortest-ramp order, and the guard still ramps every move.

The order changes which heater moves the guard is asked for, never how it makes them: a PAT step on the
default bench is recorded below the guard, write by write, and every move it received is checked against
``max_step`` and the limits with rules written from the bench file (:class:`RawWriteRecorder`).
"""

from __future__ import annotations

import numpy as np
import torch
from test_envelope_training import _true_layer
from write_recorder import RawWriteRecorder

from labsat.bench import Bench
from labsat.datasets import load_dataset
from labsat.ramp import ramp_points, ramp_steps
from labsat.systems.mrr import MRRBankSystem
from labsat.systems.tile_order import nearest_order
from labsat.training.config import TrainConfig
from labsat.training.loop import Trainer


def test_ramp_steps_counts_the_writes_ramp_points_makes() -> None:
    rng = np.random.default_rng(0)
    max_step = np.array([0.5, 0.5, 0.25, np.inf])
    starts, targets = rng.uniform(0, 4, (50, 4)), rng.uniform(0, 4, (50, 4))
    targets[0] = starts[0]  # nothing moves: no write
    counts = ramp_steps(starts, targets, max_step)
    assert counts.tolist() == [len(ramp_points(s, t, max_step)) for s, t in zip(starts, targets, strict=True)]
    assert counts[0] == 0 and counts[1:].min() >= 1


def test_nearest_order_takes_the_shortest_ramp_first() -> None:
    max_step = np.full(2, 0.5)
    programs = np.array([[3.0, 3.0], [0.4, 0.0], [1.0, 1.1], [3.2, 2.9]])
    # from 0 V: 0.4 (one write), then 1.1 (two), 3.0 (four), then 3.2 next to it (one)
    assert nearest_order(np.zeros(2), programs, max_step) == [1, 2, 0, 3]
    ties = np.array([[1.0, 0.0], [0.0, 0.9], [0.9, 0.9]])  # two writes each: the smaller largest move, earlier first
    assert nearest_order(np.zeros(2), ties, max_step) == [1, 2, 0]


def _digits_step(bench: Bench) -> tuple[Trainer, torch.Tensor, torch.Tensor]:
    dataset = load_dataset("digits", seed=0)  # 64-16-10: 16 + 4 tiles per network forward
    trainer = Trainer(TrainConfig(method="pat", batch_size=8, seed=0), _true_layer(bench), dataset)
    return trainer, dataset.train.x[:8], dataset.train.y[:8]


def test_every_heater_step_of_a_pat_step_is_within_max_step_and_limits(sim_bench: Bench) -> None:
    trainer, x, y = _digits_step(sim_bench)
    trainer.step(x, y, 0)  # from 0 V to the first tiles: the longest ramps
    recorder = RawWriteRecorder(sim_bench)
    before = sim_bench.system.stats.copy()
    trainer.step(x, y, 1)
    cost = sim_bench.system.stats.since(before)
    assert cost.programs == 20
    assert recorder.counts["raw voltage writes"] > cost.programs  # moves were ramped, so max_step was in play
    assert recorder.violations == [], recorder.violations[:5]
    assert np.array_equal(recorder.outputs("heaters"), sim_bench.sources["heaters"].values())


def test_nearest_order_measures_the_same_layer_with_fewer_writes(sim_bench: Bench) -> None:
    system = sim_bench.system
    assert isinstance(system, MRRBankSystem)
    generator = torch.Generator().manual_seed(0)
    controls = 1.2 + 0.6 * torch.rand(16, 64, generator=generator)
    x = torch.rand(16, 64, generator=generator)
    heaters = sim_bench.sources["heaters"]._device
    results, writes = {}, {}
    for order in ("given", "nearest", "given", "nearest"):  # each after the other: both start from a programmed tile
        system.tile_order = order
        system.forward(x, controls)  # reach the layer's last tile first
        start = len(heaters.history)
        results[order] = system.forward(x, controls)
        writes[order] = len(heaters.history) - start
    assert writes["nearest"] < writes["given"]
    assert torch.allclose(results["nearest"], results["given"], atol=0.02)  # outputs ≈ 20: read noise apart
