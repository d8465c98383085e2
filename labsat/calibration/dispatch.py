"""Which calibration a bench takes, and running it: the one entry point of the commands and the jobs.

The bench's system kind says how it is calibrated (:attr:`SystemKind.calibration
<labsat.systems.kind.SystemKind.calibration>`): a bank by a chain of resumable procedures
(:mod:`labsat.calibration.runner`), a mesh by one whole-mesh fit and a D2NN by one LUT fit of each mask
SLM (:mod:`labsat.calibration.fit_runner`), each stored as its own record kind. ``labsat calibrate``, the
``calibrate`` job and training's calibrate-on-demand all call :func:`calibrate_bench`, so none of them
decides which; an option of one kind given for a bench of another is refused by name rather than ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labsat.calibration.session import Observer, Progress
from labsat.calibration.stored import RecordType, StoredCalibration
from labsat.errors import LabsatError
from labsat.store import Store
from labsat.systems.kind import UnsupportedSystem, bench_kind, installed_kinds

if TYPE_CHECKING:
    from labsat.bench import Bench

__all__ = ["UnsupportedSystem", "calibrate_bench", "record_type"]


def record_type(bench: Bench) -> RecordType:
    """The record kind ``bench``'s system is calibrated into."""
    return bench_kind(bench).calibration.record


def _given(value: Any) -> bool:
    return value is not None and value is not False and value != [] and value != ()


def calibrate_bench(
    bench: Bench,
    store: Store,
    *,
    progress: Progress | None = None,
    observe: Observer | None = None,
    names: Mapping[str, str] | None = None,
    **settings: Any,
) -> StoredCalibration:
    """Calibrate ``bench`` the way its system kind is calibrated; returns the finished record (saved in ``store``).

    ``settings`` are the kind's own options (a bank's ``only``, ``resume`` and ``options``, a mesh's
    ``mesh``, a D2NN's ``d2nn``; None or False: not given). One another kind takes is refused, naming
    that kind and the option as in ``names`` (the CLI passes its flags); one no kind takes is refused too.
    """
    kind = bench_kind(bench)
    own = kind.calibration
    label = dict(names or {})
    given = {name: value for name, value in settings.items() if _given(value)}
    foreign = [name for name in given if name not in own.parameters]
    if foreign:
        owners = {name: other.calibration for other in installed_kinds() for name in other.calibration.parameters}
        owner = owners.get(foreign[0])
        spelt = [label.get(name, name) for name in foreign if owners.get(name) is owner]
        its = "/".join(dict.fromkeys(label.get(name, name) for name in own.parameters)) or "none"
        where = f"bench {bench.name!r} is a {bench.spec.system.label}, calibrated by {own.label} (its options: {its})"
        if owner is None:
            raise LabsatError(f"{', '.join(spelt)}: no installed system kind takes this calibration option; {where}")
        raise LabsatError(f"{', '.join(spelt)}: for {owner.label} only; {where}")
    return own.run(bench, store, given, progress, observe)
