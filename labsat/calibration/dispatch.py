"""Which calibration a bench takes, and running it: the one entry point of the commands and the jobs.

A bank is calibrated by a chain of resumable procedures (:mod:`labsat.calibration.runner`), a mesh by
one whole-mesh fit and a D2NN by one LUT fit of each mask SLM (:mod:`labsat.calibration.fit_runner`), and
each is stored as its own record kind. ``labsat calibrate``, the ``calibrate`` job and training's
calibrate-on-demand all call :func:`calibrate_bench`, so none of them decides which; the options of one
kind given for a bench of another are refused by name rather than ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labsat.calibration.d2nn_record import D2NNCalibrationOptions, D2NNCalibrationRecord
from labsat.calibration.fit_runner import calibrate_d2nn_bench, calibrate_mesh_bench
from labsat.calibration.mesh_record import MeshCalibrationOptions, MeshCalibrationRecord
from labsat.calibration.record import CalibrationOptions, CalibrationRecord
from labsat.calibration.runner import calibrate
from labsat.calibration.session import Progress
from labsat.calibration.stored import RecordType, StoredCalibration
from labsat.errors import LabsatError
from labsat.store import Store
from labsat.systems.d2nn import D2NNSystem
from labsat.systems.mrr import MRRBankSystem
from labsat.systems.mzi import MZIMeshSystem

if TYPE_CHECKING:
    from labsat.bench import Bench

PARAMETER_NAMES = {"only": "only", "resume": "resume", "options": "options", "mesh": "mesh", "d2nn": "d2nn"}
"""How a refusal names each option; the CLI passes its flags instead (``names=``)."""


class UnsupportedSystem(LabsatError):
    """A bench whose system the calibrate/train/evaluate commands do not drive."""


@dataclass(frozen=True)
class _Kind:
    """One kind of calibration: the system it is for, its record, how it is named and which options are its."""

    system: type
    record: RecordType
    options_of: str
    """What its options tune, as a refusal says it: "for {options_of} only"."""
    parameters: tuple[str, ...]
    """Its parameters of :func:`calibrate_bench`."""


KINDS = (
    _Kind(MRRBankSystem, CalibrationRecord, "an MRR bank's calibration procedures", ("only", "resume", "options")),
    _Kind(MZIMeshSystem, MeshCalibrationRecord, "an MZI mesh's fit", ("mesh",)),
    _Kind(D2NNSystem, D2NNCalibrationRecord, "a D2NN's SLM LUT fit", ("d2nn",)),
)


def _kind(bench: Bench) -> _Kind:
    for kind in KINDS:
        if isinstance(bench.system, kind.system):
            return kind
    raise UnsupportedSystem(
        f"bench {bench.name!r} is a {bench.spec.system.label}: `labsat calibrate`, `train` and `evaluate` (and their "
        "REST jobs) drive MRR banks, MZI meshes and D2NNs"
    )


def record_type(bench: Bench) -> RecordType:
    """The record kind ``bench``'s system is calibrated into; refuses a system the commands do not drive."""
    return _kind(bench).record


def calibrate_bench(
    bench: Bench,
    store: Store,
    *,
    only: Sequence[str] | None = None,
    resume: bool = False,
    options: CalibrationOptions | None = None,
    mesh: MeshCalibrationOptions | None = None,
    d2nn: D2NNCalibrationOptions | None = None,
    progress: Progress | None = None,
    names: Mapping[str, str] | None = None,
) -> StoredCalibration:
    """Calibrate ``bench`` the way its system is calibrated; returns the finished record (saved in ``store``).

    ``only``, ``resume`` and ``options`` tune a bank's procedures (:func:`~labsat.calibration.runner.calibrate`),
    ``mesh`` a mesh's fit and ``d2nn`` a D2NN's LUT fit; given for another kind of bench they are refused,
    named as in ``names``.
    """
    kind = _kind(bench)
    label = {**PARAMETER_NAMES, **(names or {})}
    given: dict[str, Any] = {"only": bool(only), "resume": resume, "options": options, "mesh": mesh, "d2nn": d2nn}
    for other in KINDS:
        foreign = [label[name] for name in other.parameters if given[name] not in (None, False)]
        if other is not kind and foreign:
            own = "/".join(dict.fromkeys(label[name] for name in kind.parameters))
            raise LabsatError(
                f"{', '.join(foreign)}: for {other.options_of} only; bench {bench.name!r} is a "
                f"{bench.spec.system.label}, calibrated by {kind.options_of} (its options: {own})"
            )
    if kind.record is MeshCalibrationRecord:
        return calibrate_mesh_bench(bench, store, mesh, progress)
    if kind.record is D2NNCalibrationRecord:
        return calibrate_d2nn_bench(bench, store, d2nn, progress)
    return calibrate(bench, store, only=only, resume=resume, options=options, progress=progress)
