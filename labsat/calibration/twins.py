"""The twin of a bench's newest calibration: the store lookup that training, evaluation and checks start from.

The twin itself (:mod:`labsat.twin`) is built from a record and knows nothing of the store or of the
procedures that wrote the record; finding the right record for a bench is calibration's business.
"""

from __future__ import annotations

from labsat.bench import Bench
from labsat.calibration.record import CalibrationRecord
from labsat.calibration.session import bench_identity
from labsat.calibration.stored import latest_record_of
from labsat.errors import LabsatError
from labsat.store import Store
from labsat.systems.mrr import MRRBankSystem
from labsat.twin import Twin, apply_calibration


def latest_record(store: Store, bench_name: str, identity: str | None = None) -> CalibrationRecord:
    """The newest finished bank calibration of a bench that can build a twin (optionally of one identity)."""
    return latest_record_of(store, bench_name, identity, CalibrationRecord)


def twin_for_bench(bench: Bench, store: Store | None = None, *, apply: bool = True) -> Twin:
    """The twin of ``bench``'s newest calibration of these very instruments and chip.

    With ``apply`` (the default) the record's readout is applied to ``bench.system`` as well, so that
    the System and the twin answer in the same units from then on.
    """
    system = bench.system
    if not isinstance(system, MRRBankSystem):
        raise LabsatError(f"bench {bench.name!r} is a {bench.spec.system.label}, not an MRR bank: it has no bank twin")
    record = latest_record(store or Store(), bench.name, bench_identity(bench))
    if apply:
        apply_calibration(system, record)
    return Twin.from_record(record, bench.torch_device)
