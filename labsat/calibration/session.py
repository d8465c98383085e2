"""A calibration run in progress, and the bench facts a record is keyed on.

:class:`Run` is what every procedure receives: the bench, the record being filled, and
:meth:`Run.steps`, which saves the partial record after each step so that an interruption loses at
most the step in progress and a resumed run never measures a finished one again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labsat.calibration.record import CalibrationOptions, CalibrationRecord, ProcedureResult
from labsat.store import Store
from labsat.systems.mrr import MRRBankSystem

if TYPE_CHECKING:
    from labsat.bench import Bench

Progress = Callable[[str, int, int], None]
"""``progress(procedure, steps_done, steps_total)``, called after every step."""

Observer = Callable[[str, dict[str, Any]], None]
"""``observe(procedure, measurement)``: one measurement and its fit as JSON-able numbers, as soon as it is taken
(what a live view draws: a ring's heater sweep and its Lorentzian)."""


@dataclass
class Run:
    """One calibration run in progress: the bench, the record being filled, where it is saved."""

    bench: Bench
    system: MRRBankSystem
    """The bench's System, which the procedures measure through."""
    store: Store
    record: CalibrationRecord
    progress: Progress | None = None
    observe: Observer | None = None

    @property
    def options(self) -> CalibrationOptions:
        return self.record.options

    @property
    def artifacts(self) -> Path:
        return self.store.artifact_dir("calibrations", self.record.id)

    def checkpoint(self) -> None:
        self.store.save_calibration(self.record)

    def steps(self, name: str, result: ProcedureResult, total: int) -> Iterator[int]:
        """Yield the steps of ``result`` not done yet; after each, account its cost and save the record.

        If the caller's loop body raises, the step is neither marked done nor saved, so a resumed run
        measures it again from the start. What a procedure computes after its last step runs again on
        resume too, since only the runner marks a procedure complete, once the procedure has returned.
        """
        self._report(name, len(result.done), total)
        for step in range(total):
            if step in result.done:
                continue
            before = self.system.stats.copy()
            yield step
            result.cost = result.cost.plus(self.system.stats.since(before))
            result.done.append(step)
            self.checkpoint()
            self._report(name, len(result.done), total)

    def _report(self, name: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(name, done, total)


def bench_identity(bench: Bench) -> str:
    """A fingerprint of what a calibration depends on: instruments, their wiring, the system, the chip.

    Limits are left out on purpose: tightening a ramp step does not change the chip, and must not
    orphan its calibrations.
    """
    devices: dict[str, Any] = {}
    for name, spec in bench.spec.devices.items():
        device = bench.sources.get(name) or bench.detectors.get(name) or bench.slms.get(name)
        devices[name] = {
            "driver": spec.driver,
            "address": spec.address,
            "channels": None if spec.channels is None else spec.channels.model_dump(),
            "identity": None if device is None else device.identity(),
        }
    described = {
        "devices": devices,
        "system": bench.spec.system.model_dump(mode="json"),
        "simulator": bench.spec.simulator,
        "seed": bench.spec.seed,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]
