"""Running calibrations: which procedures, in what order, resumable.

:func:`calibrate` is what the CLI and (later) the job worker call. It starts a record (or picks up the
unfinished one with ``resume=True``), runs the requested procedures in :data:`MEASUREMENTS` order,
derives the chip parameters and checks the twin against fresh device measurements (``validation``).
Every procedure saves the partial record after each step (:meth:`Run.steps
<labsat.calibration.session.Run.steps>`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from labsat.calibration import crosstalk, detectors, heaters, modulators, rings, validation
from labsat.calibration.parameters import derive_parameters
from labsat.calibration.record import MEASUREMENTS, PROCEDURE_ORDER, CalibrationOptions, CalibrationRecord
from labsat.calibration.session import Observer, Progress, Run, bench_identity
from labsat.errors import LabsatError
from labsat.store import Store, new_id, utcnow
from labsat.systems.mrr import MRRBankSystem
from labsat.truth import chip_delta_t_k

if TYPE_CHECKING:
    from labsat.bench import Bench

PROCEDURES: dict[str, Callable[[Run], None]] = {
    "detectors": detectors.run,
    "modulators": modulators.run,
    "rings": rings.run,
    "crosstalk": crosstalk.run,
    "heaters": heaters.run,
    "validation": validation.run,
}
REQUIRES: dict[str, tuple[str, ...]] = {
    "detectors": (),
    "modulators": ("detectors",),
    "rings": ("detectors", "modulators"),
    "crosstalk": ("detectors", "modulators", "rings"),
    "heaters": ("detectors", "modulators", "rings", "crosstalk"),
    "validation": MEASUREMENTS,
}


def calibrate(
    bench: Bench,
    store: Store,
    *,
    only: Sequence[str] | None = None,
    resume: bool = False,
    options: CalibrationOptions | None = None,
    progress: Progress | None = None,
    observe: Observer | None = None,
) -> CalibrationRecord:
    """Calibrate ``bench``; returns the finished record (also saved in ``store``).

    ``only`` limits the run to some procedures; the others are taken from the bench's latest finished
    calibration. The twin check (``validation``) runs whenever the record can build a twin. ``resume``
    continues the bench's unfinished run with the options it started with.
    """
    system = bench.system
    if not isinstance(system, MRRBankSystem):
        raise LabsatError(
            f"bench {bench.name!r} is a {bench.spec.system.label}: these are an MRR weight bank's calibration "
            "procedures; labsat.calibration.calibrate_bench calibrates any bench `labsat calibrate` drives (a "
            "mesh with labsat.calibration.mzi.calibrate_mesh); an SLM's LUT is calibrated with "
            "labsat.calibration.slm_lut.calibrate_slm_luts"
        )
    identity = bench_identity(bench)
    if resume and only:
        raise LabsatError("--resume continues the unfinished run with the procedures it started with; drop --only")
    if resume:
        record = _resumed(bench, store, identity)
    else:
        record = _started(bench, system, store, identity, only, options or CalibrationOptions())
    available = set(record.requested) | {name for name in MEASUREMENTS if record.result(name) is not None}
    for name in record.requested:
        missing = [need for need in REQUIRES[name] if need not in available]
        if missing:
            raise LabsatError(
                f"procedure {name!r} needs the results of {', '.join(missing)}, and bench {bench.name!r} has no "
                f"finished calibration that holds them: run them too (drop --only, or add --only {missing[0]})"
            )
    run = Run(bench=bench, system=system, store=store, record=record, progress=progress, observe=observe)
    run.checkpoint()
    for name in MEASUREMENTS:
        if name in record.requested:
            _run_procedure(run, name)
    if all(record.result(name) is not None for name in MEASUREMENTS):
        record.parameters = derive_parameters(record)
        run.checkpoint()
        _run_procedure(run, "validation")
    record.complete = True
    record.finished = utcnow()
    run.checkpoint()
    return record


def _run_procedure(run: Run, name: str) -> None:
    """Run (or finish) one procedure and mark its result complete once it returned."""
    result = run.record.result(name)
    if result is not None and result.complete:
        return
    PROCEDURES[name](run)
    result = run.record.result(name)
    assert result is not None
    result.complete = True
    result.finished = utcnow()
    run.checkpoint()


def _started(
    bench: Bench,
    system: MRRBankSystem,
    store: Store,
    identity: str,
    only: Sequence[str] | None,
    options: CalibrationOptions,
) -> CalibrationRecord:
    record_id = new_id()
    record = CalibrationRecord(
        id=record_id,
        bench=bench.name,
        bench_identity=identity,
        created=utcnow(),
        delta_t_k=chip_delta_t_k(bench.shared),
        rows=system.rows,
        cols=system.cols,
        options=options,
        requested=[name for name in PROCEDURE_ORDER if not only or name in only],
    )
    if not only:
        return record
    for name in only:
        if name not in PROCEDURE_ORDER:
            raise LabsatError(f"unknown calibration procedure {name!r} (known: {', '.join(PROCEDURE_ORDER)})")
    previous = next(
        (
            old
            for old in store.list_calibrations(bench.name)
            if isinstance(old, CalibrationRecord) and old.complete and old.bench_identity == identity
        ),
        None,
    )
    if previous is not None:
        record.inherited_from = previous.id
        for name in MEASUREMENTS:
            if name not in record.requested:
                setattr(record, name, previous.result(name))
    return record


def _resumed(bench: Bench, store: Store, identity: str) -> CalibrationRecord:
    unfinished = store.latest_calibration(bench.name, complete=False)
    if not isinstance(unfinished, CalibrationRecord):  # a mesh's records are only ever stored finished
        raise LabsatError(f"bench {bench.name!r} has no unfinished calibration to resume")
    if unfinished.bench_identity != identity:
        raise LabsatError(
            f"the unfinished calibration {unfinished.id} of bench {bench.name!r} was made with other instruments "
            f"or another chip (identity {unfinished.bench_identity}, now {identity}); start a new one instead"
        )
    return unfinished
