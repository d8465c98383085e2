"""Shared fixtures: an isolated data directory and bench files derived from the default bench."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
import yaml

from labsat.bench import Bench, builtin_bench_path, open_bench


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data directory (store, simulator state) and bench locks."""
    path = tmp_path / "data"
    monkeypatch.setenv("LABSAT_DATA", str(path))
    monkeypatch.setenv("LABSAT_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("LABSAT_DEVICE", "cpu")
    return path


@pytest.fixture
def default_bench_data() -> dict[str, Any]:
    return yaml.safe_load(builtin_bench_path().read_text())


BenchWriter = Callable[[Callable[[dict[str, Any]], None]], Path]


@pytest.fixture
def write_bench(tmp_path: Path, default_bench_data: dict[str, Any]) -> BenchWriter:
    """Write the default bench with ``edit`` applied to its YAML data; returns the file."""
    counter = iter(range(1000))

    def writer(edit: Callable[[dict[str, Any]], None]) -> Path:
        data = deepcopy(default_bench_data)
        edit(data)
        path = tmp_path / f"bench{next(counter)}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return writer


@pytest.fixture
def sim_bench(data_dir: Path) -> Iterator[Bench]:
    with open_bench(builtin_bench_path(), data_dir=data_dir) as bench:
        yield bench


def write_history(bench: Bench, device: str) -> list[Any]:
    """Every write the simulated instrument behind ``device`` received (the raw device, below the guard)."""
    return bench.sources[device]._device.history
