"""Training on a bench whose envelope is tighter than its voltage box: no write refused, every write inside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from conftest import BenchWriter

from labsat.bench import Bench, open_bench
from labsat.datasets import load_dataset
from labsat.physics.mrr import MRRBankModel
from labsat.readout import Readout
from labsat.training.config import TrainConfig
from labsat.training.loop import train
from labsat.training.physical import PhysicalLayer
from labsat.truth import SIMULATED_CHIP

LIMIT_V, POWER_CAP_MW, BUDGET_MW, NEIGHBOUR_V = 2.2, 1.5, 60.0, 1.0
"""A 2.2 V box, 1.5 mW per heater (1.22 V at 1 kΩ), 60 mW for the 64 heaters (< 64 × 1.5), 1 V between neighbours."""


def _tight(data: dict[str, Any]) -> None:
    heaters = data["devices"]["heaters"]
    heaters["limits"].update(voltage=[0.0, LIMIT_V], power_max_mw=POWER_CAP_MW)
    heaters["neighbour_max_diff"] = NEIGHBOUR_V
    data["limits"]["heater_power_budget_mw"] = BUDGET_MW


def _record_writes(bench: Bench, device: str) -> list[np.ndarray]:
    """Every output vector of ``device`` after each raw write below the guard."""
    raw = bench.sources[device]._device
    outputs = np.asarray(raw.read_voltages(), dtype=float).copy()
    vectors: list[np.ndarray] = []
    write = raw.write_voltages

    def recording(positions: np.ndarray, volts: np.ndarray) -> None:
        write(positions, volts)
        outputs[np.asarray(positions)] = np.asarray(volts, dtype=float)
        vectors.append(outputs.copy())

    raw.write_voltages = recording
    return vectors


def _true_layer(bench: Bench) -> PhysicalLayer:
    truth = bench.shared[SIMULATED_CHIP].truth
    system = bench.system
    system.readout = Readout(
        volts_per_unit=(truth.readout_volts_per_mw * truth.input_power_mw[0]).float(),
        dark_volts=truth.readout_offset_v.float(),
        modulator_v_pi=truth.modulator_v_pi.float(),
    )
    model = MRRBankModel(truth)
    return PhysicalLayer.from_system(system, lambda x, c: model.layer(x.double(), c.double()).float())


def test_pat_sat_stays_inside_a_tight_envelope(write_bench: BenchWriter, data_dir: Path) -> None:
    with open_bench(write_bench(_tight), data_dir=data_dir) as bench:
        heaters = _record_writes(bench, "heaters")
        physical = _true_layer(bench)
        config = TrainConfig(method="pat+sat", epochs=1, hidden=(8,), batch_size=32, deploy_steps=20, seed=3)
        result = train(config, physical, load_dataset("iris", seed=0))
        assert len(result.steps) == 3  # the whole epoch ran (95 of iris's 112, the rest validates): no write refused
        assert len(heaters) > 10
        written = np.array(heaters)
        power = written**2 * 1e3 / 1000.0
        assert written.min() >= 0.0 and written.max() <= LIMIT_V
        assert power.max() <= POWER_CAP_MW
        assert power.sum(axis=1).max() <= BUDGET_MW
        assert np.abs(np.diff(written, axis=1)).max() <= NEIGHBOUR_V
        assert power.sum(axis=1).max() > 0.5 * BUDGET_MW  # the limits were reached, not avoided from afar
