"""Calibrations stored as one finished fit: what an MZI mesh's record and a D2NN's share, and storing one.

A bank is calibrated by a chain of procedures that each measure one part of the chip and save as they go
(:class:`~labsat.calibration.record.CalibrationRecord`). A mesh (:mod:`labsat.calibration.mesh_record`)
and a D2NN's mask SLMs (:mod:`labsat.calibration.d2nn_record`) are each calibrated by one measurement and
one fit on the bench PC: seconds to minutes of device time, stored once finished (an interrupted one
simply runs again). Their records share the store's calibrations table, ids and listing with the banks'
(``kind`` tells them apart) and everything here: where and when the fit ran, what it cost, the one
procedure it is, no flags, no chip temperature, and a version check on load. Each adds its options, what
it fitted and the figures that judge the fit (:meth:`FitRecord.figures`, what the commands print).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import Field

from labsat.calibration.record import Cost, Flag, _Model
from labsat.calibration.session import bench_identity
from labsat.errors import LabsatError
from labsat.store import Store, new_id, utcnow

if TYPE_CHECKING:
    from labsat.bench import Bench

F = TypeVar("F", bound="FitRecord")


class FitRecord(_Model):
    """One finished fit of one bench; subclasses add ``kind``, ``options``, the fitted values and figures."""

    PROCEDURE: ClassVar[str]
    """The one procedure the record holds (its ``procedures`` in listings)."""
    LABEL: ClassVar[str]
    """What the fit is called in messages ("mesh", "D2NN LUT")."""

    kind: str
    """The system's ``type`` in the bench file (each subclass fixes its own)."""
    version: int
    id: str
    bench: str
    bench_identity: str
    created: datetime
    finished: datetime
    options: _Model
    """How the fit measured and fitted (each subclass has its own options model)."""
    cost: Cost = Field(default_factory=Cost)
    complete: bool = True

    @property
    def procedures(self) -> list[str]:
        return [self.PROCEDURE]

    @property
    def flags(self) -> list[Flag]:
        """A fit flags nothing: its figures (:meth:`figures`) are what to look at."""
        return []

    @property
    def delta_t_k(self) -> None:
        """These benches report no chip temperature."""
        return None

    @property
    def builds_twin(self) -> bool:
        return self.complete

    def figures(self) -> dict[str, Any]:
        """The numbers that judge the fit, as the commands and jobs report them."""
        raise NotImplementedError

    def described(self) -> dict[str, Any]:
        """What the command's summary says of the system fitted besides the figures (a mesh's modes...)."""
        return {}

    def fitted(self) -> Any:
        """The fitted values as ``labsat calibrations ID`` shows them (JSON-ready)."""
        raise NotImplementedError

    def comparable(self) -> dict[str, Any]:
        """The fitted values by name, for :func:`~labsat.calibration.comparison.compare` (nested names: dotted)."""
        return _flattened(self.fitted())

    def table(self, summary: dict[str, Any]) -> tuple[str, list[tuple[str, str]], str]:
        """The title, rows and caption of the command's table of this fit (``summary``: the command's summary)."""
        rows = [(name, f"{value:.4g}") for name, value in self.figures().items() if isinstance(value, float)]
        return f"{self.LABEL} calibration", rows, ""

    def twin_rms(self) -> dict[str, float | None]:
        """How well its twin matched the device, as listings show it (None: the fit reports no such number)."""
        return {"twin_weight_rms": None, "holdout_rms": None}

    @classmethod
    def from_calibration(
        cls: type[F],
        calibration: Any,
        *,
        id: str,
        bench: str,
        bench_identity: str,
        created: datetime,
        finished: datetime,
        options: Any,
    ) -> F:
        """The record of a finished fit (the value the fit function returned), where and when it ran."""
        stamp = {"id": id, "bench": bench, "bench_identity": bench_identity, "created": created, "finished": finished}
        return cls(**stamp, options=options, **cls.fitted_fields(calibration))

    @classmethod
    def fitted_fields(cls, calibration: Any) -> dict[str, Any]:
        """The record's own fields (what was fitted, its figures, ``cost``) from the value the fit returned."""
        raise NotImplementedError

    @classmethod
    def from_stored(cls: type[F], data: dict[str, Any]) -> F:
        """Load stored JSON; a record from a newer labsat is refused rather than misread."""
        version, expected = data.get("version"), cls.model_fields["version"].default
        if version != expected:
            raise LabsatError(
                f"{cls.LABEL} calibration {data.get('id')!r} has record version {version}; this labsat reads "
                f"version {expected}"
            )
        return cls.model_validate(data)


def store_fit(bench: Bench, store: Store, record_type: type[F], options: _Model, fit: Callable[[], Any]) -> F:
    """Run ``fit()`` on ``bench`` and save its result as a ``record_type`` made with ``options``; returns it."""
    identity = bench_identity(bench)
    created = utcnow()
    calibration = fit()
    record = record_type.from_calibration(
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


def _flattened(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"luts": {"mask0": [...]}}`` as ``{"luts.mask0": [...]}``: one comparable quantity per name."""
    flat: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(_flattened(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat
