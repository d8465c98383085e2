"""An interrupted calibration resumes where it stopped: finished ring groups are never measured again."""

from __future__ import annotations

from pathlib import Path

import pytest

from labsat.bench import builtin_bench_path, open_bench
from labsat.calibration import CalibrationOptions, calibrate
from labsat.errors import LabsatError
from labsat.store import Store

SWEEPS_ONLY = ["detectors", "modulators", "rings"]
OPTIONS = CalibrationOptions(sweep_points=32, parallel_columns=False)  # eight steps, one per column
STOP_AFTER = 3


class Unplugged(Exception):
    """Stands for whatever ends a run: Ctrl-C, a crash, a power cut."""


def _stop_after_rings(done_wanted: int):
    def progress(name: str, done: int, total: int) -> None:
        if name == "rings" and done == done_wanted:
            raise Unplugged

    return progress


def test_an_interrupted_run_resumes_without_repeating_finished_rings(data_dir: Path) -> None:
    store = Store(data_dir)
    with open_bench(builtin_bench_path(), data_dir=data_dir) as bench, pytest.raises(Unplugged):
        calibrate(bench, store, only=SWEEPS_ONLY, options=OPTIONS, progress=_stop_after_rings(STOP_AFTER))
    partial = store.latest_calibration(bench.name, complete=False)
    assert partial is not None and partial.rings is not None
    assert partial.rings.done == list(range(STOP_AFTER)) and not partial.rings.complete
    assert partial.rings.cost.programs == STOP_AFTER * OPTIONS.sweep_points
    assert store.latest_calibration(bench.name) is None  # nothing finished yet

    # A new process: the bench is opened again, and the run goes on with the options it started with.
    with open_bench(builtin_bench_path(), data_dir=data_dir) as bench:
        record = calibrate(bench, store, resume=True, options=CalibrationOptions(sweep_points=96))
        programs_now = bench.system.stats.programs
    assert record.id == partial.id and record.complete
    assert record.rings is not None and record.rings.points == OPTIONS.sweep_points
    remaining = (record.cols - STOP_AFTER) * OPTIONS.sweep_points
    assert programs_now == remaining  # detectors and modulators were finished: not one program for them
    assert record.rings.cost.programs == record.cols * OPTIONS.sweep_points
    assert record.rings.done == list(range(record.cols))
    assert all(fit is not None for row in record.rings.fits for fit in row)
    assert record.detectors == partial.detectors and record.modulators == partial.modulators


def test_resume_and_only_say_what_is_missing(data_dir: Path) -> None:
    store = Store(data_dir)
    with open_bench(builtin_bench_path(), data_dir=data_dir) as bench:
        with pytest.raises(LabsatError, match="no unfinished calibration to resume"):
            calibrate(bench, store, resume=True)
        with pytest.raises(LabsatError, match=r"'rings' needs the results of detectors, modulators"):
            calibrate(bench, store, only=["rings"])
        with pytest.raises(LabsatError, match="unknown calibration procedure 'ring'"):
            calibrate(bench, store, only=["ring"])
        assert bench.system.stats.programs == 0
