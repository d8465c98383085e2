"""Calibrating a mesh bench: the whole-mesh fit through the bench's guarded System, stored as a record.

The bank's runner (:mod:`labsat.calibration.runner`) saves after every step so an interrupted run
resumes; a mesh fit measures for seconds and then fits on the bench PC, so it is stored once, finished,
and an interrupted one simply runs again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labsat.calibration.mesh_record import MeshCalibrationOptions, MeshCalibrationRecord
from labsat.calibration.mzi import Progress, calibrate_mesh
from labsat.calibration.session import bench_identity
from labsat.errors import LabsatError
from labsat.store import Store, new_id, utcnow
from labsat.systems.mzi import MZIMeshSystem

if TYPE_CHECKING:
    from labsat.bench import Bench


def calibrate_mesh_bench(
    bench: Bench, store: Store, options: MeshCalibrationOptions | None = None, progress: Progress | None = None
) -> MeshCalibrationRecord:
    """Fit ``bench``'s mesh (:func:`~labsat.calibration.mzi.calibrate_mesh`); returns the record, saved in ``store``."""
    system = bench.system
    if not isinstance(system, MZIMeshSystem):
        raise LabsatError(f"bench {bench.name!r} is a {bench.spec.system.label}, not an MZI mesh")
    options = options or MeshCalibrationOptions()
    identity = bench_identity(bench)
    created = utcnow()
    calibration = calibrate_mesh(system, **options.model_dump(), progress=progress)
    record = MeshCalibrationRecord.from_calibration(
        calibration,
        id=new_id(),
        bench=bench.name,
        bench_identity=identity,
        created=created,
        finished=utcnow(),
        options=options,
    )
    store.save_calibration(record)
    return record
