"""Calibration plans its sweeps inside the guard's allowed set: the budget and the neighbour rule included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import BenchWriter

from labsat.bench import open_bench
from labsat.calibration.rings import heater_resistance, max_heater_power_mw, random_heater_maps, ring_groups, sweep_plan


def _tight(data: dict[str, Any]) -> None:
    data["devices"]["heaters"]["limits"].update(voltage=[0.0, 2.2], power_max_mw=3.0)
    data["devices"]["heaters"]["neighbour_max_diff"] = 1.0
    data["limits"]["heater_power_budget_mw"] = 40.0


def test_sweep_plans_and_random_maps_stay_inside_the_guard(write_bench: BenchWriter, data_dir: Path) -> None:
    with open_bench(write_bench(_tight), data_dir=data_dir) as bench:
        system = bench.system
        heaters = bench.source("heaters")
        resistance = heater_resistance(system)
        top = max_heater_power_mw(system)
        assert top == pytest.approx(3.0 * (1 - 1e-6), rel=1e-12)  # power cap below 2.2 V² / 1 kΩ = 4.84 mW

        def columns(max_columns: int) -> list[list[tuple[int, int]]]:
            return ring_groups(8, 8, parallel_rows=True, column_spacing=2, max_columns=max_columns)

        groups, swept_top = sweep_plan(system, resistance, top, columns)
        # A ring hot beside cold neighbours may differ from them by 1 V: at 1 kΩ, at most 1 mW.
        assert 0.99 < swept_top <= 1.0 + 1e-6  # (the float32 volts that are programmed round down)
        assert groups == columns(1) or len(groups[0]) * swept_top <= 40.0
        for group in groups:
            hottest = torch.zeros(8, 8, dtype=torch.float64)
            for r, c in group:
                hottest[r, c] = (swept_top * resistance[r, c] / 1e3).sqrt()
            system.program(hottest.to(torch.float32))  # refused by the guard if the plan were outside

        maps = random_heater_maps(system, 16, resistance, top, torch.Generator().manual_seed(0))
        assert maps.dtype == torch.float32
        assert heaters.allows(maps.reshape(16, -1)).all()
        assert not heaters.allows((torch.rand(16, 64, generator=torch.Generator().manual_seed(0)) * 3.0) ** 0.5).all()
        for heater_map in maps[:3]:
            system.program(heater_map)


def test_the_budget_decides_how_many_columns_sweep_together(write_bench: BenchWriter, data_dir: Path) -> None:
    def budget(data: dict[str, Any]) -> None:
        data["limits"]["heater_power_budget_mw"] = 300.0  # 16 mW rings: two columns of 8 at once (256 mW)

    with open_bench(write_bench(budget), data_dir=data_dir) as bench:
        system = bench.system

        def columns(max_columns: int) -> list[list[tuple[int, int]]]:
            return ring_groups(8, 8, parallel_rows=True, column_spacing=2, max_columns=max_columns)

        groups, top = sweep_plan(system, heater_resistance(system), max_heater_power_mw(system), columns)
        assert top == max_heater_power_mw(system)
        assert max(len(group) for group in groups) == 16
