"""Which calibration a bench takes, and running it: the one entry point of the commands and the jobs.

A bank is calibrated by a chain of resumable procedures (:mod:`labsat.calibration.runner`), a mesh by
one whole-mesh fit (:mod:`labsat.calibration.mesh_runner`), and each is stored as its own record kind.
``labsat calibrate``, the ``calibrate`` job and training's calibrate-on-demand all call
:func:`calibrate_bench`, so none of them decides which; the options of one kind given for a bench of
the other are refused by name rather than ignored. A system those commands do not drive (a D2NN, whose
LUT calibration and training stay on the Python API for now) is refused here, once, for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from labsat.calibration.mesh_record import MeshCalibrationOptions, MeshCalibrationRecord
from labsat.calibration.mesh_runner import calibrate_mesh_bench
from labsat.calibration.record import CalibrationOptions, CalibrationRecord
from labsat.calibration.runner import calibrate
from labsat.calibration.session import Progress
from labsat.calibration.stored import StoredCalibration
from labsat.errors import LabsatError
from labsat.store import Store
from labsat.systems.mrr import MRRBankSystem
from labsat.systems.mzi import MZIMeshSystem

if TYPE_CHECKING:
    from labsat.bench import Bench

PARAMETER_NAMES = {"only": "only", "resume": "resume", "options": "options", "mesh": "mesh"}
"""How a refusal names each option; the CLI passes its flags instead (``names=``)."""


class UnsupportedSystem(LabsatError):
    """A bench whose system the calibrate/train/evaluate commands do not drive."""


def record_type(bench: Bench) -> type[CalibrationRecord] | type[MeshCalibrationRecord]:
    """The record kind ``bench``'s system is calibrated into; refuses a system the commands do not drive."""
    if isinstance(bench.system, MRRBankSystem):
        return CalibrationRecord
    if isinstance(bench.system, MZIMeshSystem):
        return MeshCalibrationRecord
    raise UnsupportedSystem(
        f"bench {bench.name!r} is a {bench.spec.system.label}: `labsat calibrate`, `train` and `evaluate` (and "
        "their REST jobs) drive MRR banks and MZI meshes; a diffractive network stays on the Python API for now "
        "(labsat.calibration.slm_lut.calibrate_slm_luts, labsat.training.diffractive.diffractive_physical_layer)"
    )


def calibrate_bench(
    bench: Bench,
    store: Store,
    *,
    only: Sequence[str] | None = None,
    resume: bool = False,
    options: CalibrationOptions | None = None,
    mesh: MeshCalibrationOptions | None = None,
    progress: Progress | None = None,
    names: Mapping[str, str] | None = None,
) -> StoredCalibration:
    """Calibrate ``bench`` the way its system is calibrated; returns the finished record (saved in ``store``).

    ``only``, ``resume`` and ``options`` tune a bank's procedures (:func:`~labsat.calibration.runner.calibrate`),
    ``mesh`` a mesh's fit; given for the other kind of bench they are refused, named as in ``names``.
    """
    kind = record_type(bench)
    label = {**PARAMETER_NAMES, **(names or {})}
    if kind is MeshCalibrationRecord:
        mrr_only = {"only": bool(only), "resume": resume, "options": options is not None}
        given = [label[name] for name, value in mrr_only.items() if value]
        if given:
            raise LabsatError(
                f"{', '.join(given)}: for an MRR bank's calibration procedures only; bench {bench.name!r} is a "
                f"{bench.spec.system.label}, calibrated by one whole-mesh fit (its options: {label['mesh']})"
            )
        return calibrate_mesh_bench(bench, store, mesh, progress)
    if mesh is not None:
        raise LabsatError(
            f"{label['mesh']}: for an MZI mesh's fit only; bench {bench.name!r} is a {bench.spec.system.label}"
        )
    return calibrate(bench, store, only=only, resume=resume, options=options, progress=progress)
