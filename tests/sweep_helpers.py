"""Running a sweep spec given as YAML text in a fresh folder, for the sweep tests' module fixtures."""

from __future__ import annotations

import pytest
import xarray as xr

from labsat.sweep.dataset import sweep_dataset
from labsat.sweep.engines import run_sweep
from labsat.sweep.spec import load_spec


def measured_sweep(factory: pytest.TempPathFactory, text: str, cells: int) -> xr.Dataset:
    """The dataset of ``text``'s sweep run inline in one worker; every one of its ``cells`` must succeed."""
    folder = factory.mktemp("sweep")
    (folder / "spec.yaml").write_text(text)
    spec = load_spec(folder / "spec.yaml")
    assert run_sweep(spec, folder, workers=1, show_progress=False) == {"skipped": 0, "ok": cells, "failed": 0}
    return sweep_dataset(spec, folder)
