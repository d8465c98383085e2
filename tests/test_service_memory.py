"""A service runs for weeks: training jobs one after another must not grow its memory.

The simulator once kept every write it received (43–48 MB per training job); its history bound has a unit
test of its own (tests/test_mrr_simulator.py). This one holds the whole job path (engine, journal, events,
artifacts, models) to the service's budget: after ten training jobs the process's resident memory is within
10 % of what it was after the first. Measured here: 543.5 MiB after one job, 544.3 MiB after ten.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

from service_helpers import (  # noqa: F401  (fixtures)
    WAIT_S,
    calibrated_fixture,
    calibrated_template_fixture,
    new_engine,
)

from labsat.jobs.model import JobState

TRAIN = {"dataset": "iris", "method": "pat", "batch_size": 112, "epochs": 2}


def _resident_mb() -> float:
    """This process's resident set size (VmRSS) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("/proc/self/status has no VmRSS line")


def test_memory_after_ten_training_jobs_is_within_ten_percent_of_after_one(calibrated: Path) -> None:
    engine = new_engine(calibrated)
    engine.start()
    try:
        resident: list[float] = []
        for _ in range(10):
            job = engine.submit("train", None, TRAIN)
            deadline = time.monotonic() + WAIT_S
            while not engine.get(job.id).final:
                assert time.monotonic() < deadline, f"job {job.id} did not finish within {WAIT_S:g} s"
                time.sleep(0.05)
            done = engine.get(job.id)
            assert done.state is JobState.SUCCEEDED, done.error
            gc.collect()
            resident.append(_resident_mb())
    finally:
        engine.close(timeout=WAIT_S)
    growth = resident[-1] - resident[0]
    assert growth <= 0.10 * resident[0], f"resident MiB after each job: {[round(r, 1) for r in resident]}"
