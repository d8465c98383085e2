"""A drift re-lock of a stored model on an open bench, end to end: pilot, fitted drift, re-solved controls, new model.

What ``labsat relock`` and the REST job ``relock`` call; they only render it. The re-lock itself
(:mod:`labsat.training.relock`) is a pilot pass of a few unlabelled training images through the first layer on
the device, a one-parameter drift fit on the twin and a re-solve of every layer's controls there. Here:

* **Twin.** The calibration the model was trained with when the model is on its own bench (the drift is measured
  against the chip as it was then), else the bench's newest; a system whose twin models no drift is refused.
* **Guard.** The re-solve projects every iterate onto what the guard accepts; the stored controls are passed
  through :meth:`PhysicalLayer.nearest_allowed` once more, and how many elements that moved is reported (0 when
  the re-solve kept its promise), so nothing stored is a value the bench would refuse.
* **Cost.** The pilot's device queries are counted and reported on their own; with ``measure`` the device test
  accuracy before and after the re-lock is measured too, its queries counted apart from the pilot's.
* **Result.** The re-locked network is stored as a new model (metadata: the source model's, plus what the
  re-lock found); the source model is left as it was. The re-solve matches the transfer the network was
  *trained* with, so a re-locked model is re-locked again from the model it came from (``relocked_from``): its
  own controls already answer for an older drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labsat.datasets import load_dataset
from labsat.errors import LabsatError
from labsat.readout import QueryStats
from labsat.store import Store
from labsat.training.evaluate import accuracy
from labsat.training.relock import SOLVE_STEPS, Relock, relock
from labsat.training.runners import device_runner
from labsat.training.session import bench_layer, model_for_bench

if TYPE_CHECKING:
    from labsat.bench import Bench

MAX_PILOT = 4096
"""Most pilot images a request may ask for (the pilot is meant to be a few device queries)."""

MAX_SOLVE_STEPS = 100_000
"""Most re-solve steps a request may ask for (each is a twin forward and backward of every layer)."""


@dataclass(frozen=True)
class Measurement:
    """Device test accuracy of the model before and after the re-lock, and the queries measuring it cost."""

    before: float
    after: float
    samples: int
    cost: QueryStats


@dataclass(frozen=True)
class RelockRun:
    """What a finished re-lock reports (and ``--json`` prints)."""

    model_id: str
    """The stored re-locked model."""
    source_model: str
    """The trained model the re-lock started from (a re-locked model's own source)."""
    bench: str
    calibration: str
    """The calibration whose twin read the pilot: the drift is measured against the chip as it was then."""
    result: Relock
    """The fitted drift, the re-solved controls (after the guard) and the pilot's device queries."""
    measured: Measurement | None
    """Device test accuracy before and after (None: not asked for)."""
    guard_moved: int
    """Control elements :meth:`~labsat.training.physical.PhysicalLayer.nearest_allowed` moved before storing."""

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "source_model": self.source_model,
            "bench": self.bench,
            "calibration": self.calibration,
            "delta_t_k": self.result.delta_t_k,
            "pilot_queries": asdict(self.result.pilot),
            "pilot_misfit": self.result.pilot_misfit,
            "transfer_misfit": self.result.transfer_misfit,
            "guard_moved": self.guard_moved,
            "test_samples": None if self.measured is None else self.measured.samples,
            "test_accuracy_device_before": None if self.measured is None else self.measured.before,
            "test_accuracy_device_after": None if self.measured is None else self.measured.after,
            "measure_queries": None if self.measured is None else asdict(self.measured.cost),
        }


def relock_on_bench(
    bench: Bench,
    store: Store,
    model_id: str,
    *,
    pilot: int = 32,
    solve_steps: int = SOLVE_STEPS,
    measure: bool = False,
    dataset_source: Callable[[str], str | Path] = lambda label: label,
) -> RelockRun:
    """Re-lock stored model ``model_id`` to the chip's drift now, from ``pilot`` unlabelled training images.

    ``dataset_source`` maps the model's dataset label to what :func:`~labsat.datasets.load_dataset` opens (the
    service confines it to its data directory).
    """
    if not 1 <= pilot <= MAX_PILOT:
        raise LabsatError(f"the pilot takes 1 to {MAX_PILOT} images, got {pilot}")
    if not 1 <= solve_steps <= MAX_SOLVE_STEPS:
        raise LabsatError(f"the re-solve takes 1 to {MAX_SOLVE_STEPS} steps, got {solve_steps}")
    net, meta = model_for_bench(store, model_id, bench)
    while "relocked_from" in meta:
        model_id = str(meta["relocked_from"])
        net, meta = model_for_bench(store, model_id, bench)
    calibration = meta.get("calibration") if meta.get("bench") == bench.name else None
    physical, record, _ = bench_layer(bench, store, net.sizes[-1], calibration)
    if physical.drift_twin is None:
        raise LabsatError(
            f"bench {bench.name!r} is a {bench.spec.system.label}, whose twin models no drift: a pilot measurement "
            "cannot be read as one, so there is nothing to re-lock"
        )
    dataset = load_dataset(dataset_source(str(meta.get("dataset", "digits"))), seed=int(meta.get("seed", 0)))
    found = relock(net, physical, dataset.train.x[:pilot], solve_steps)
    guarded = tuple(physical.nearest_allowed(c) for c in found.controls)
    moved = sum(int((g != c).sum()) for g, c in zip(guarded, found.controls, strict=True))
    found = replace(found, controls=guarded)
    relocked = found.applied_to(net)
    measured = None
    if measure:
        before = physical.stats()
        drifted = accuracy(net, dataset.test, device_runner(physical))
        after = accuracy(relocked, dataset.test, device_runner(physical))
        measured = Measurement(drifted, after, len(dataset.test), physical.stats().since(before))
    run = RelockRun("", model_id, bench.name, record.id, found, measured, moved)
    metadata = {
        **meta,
        "calibration": record.id,
        "test_accuracy_device": None if measured is None else measured.after,
        "relocked_from": model_id,
        "relock": {key: value for key, value in run.summary().items() if key not in ("model", "source_model")},
    }
    new_id = store.save_model(bench.name, str(meta.get("method", "relock")), relocked.snapshot(), metadata)
    return replace(run, model_id=new_id)
