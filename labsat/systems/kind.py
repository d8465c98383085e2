"""System kinds: each physical system labsat drives is a plugin, found by the bench file's ``system.type``.

A kind is registered in the ``labsat.systems`` entry-point group (as drivers are in ``labsat.devices``),
so a lab adds a physical system by publishing one package with one entry point; nothing in labsat
changes. The core (bench loading, the ``sim`` driver, calibration, training, evaluation, the jobs and
their faces) asks the kind and never switches on which one it is.

A kind is a bundle of small parts, each the hook one layer of the core calls
(:class:`SystemKind`): its bench-file spec and System, its calibration and record, its training (the
network it affords and the layer, device plus twin, it trains through), its evaluation and, where the
``sim`` driver can stand in for its instruments, its simulated chip. Parts are composed, not
inherited: a mesh and a D2NN share one evaluation, and a new kind may take any part of an existing one.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel

from labsat.entrypoints import SYSTEMS, UnknownSystemKind, forget_system_kinds, known_system_types, load_system_kind
from labsat.errors import LabsatError

if TYPE_CHECKING:
    from labsat.bench import Bench
    from labsat.benchfile import SystemSpec
    from labsat.calibration.reporting import CalibrationReport
    from labsat.calibration.session import Observer, Progress
    from labsat.calibration.stored import RecordType, StoredCalibration
    from labsat.datasets import Dataset
    from labsat.evaluation.photonic import EvaluationSettings, StoredNetwork
    from labsat.evaluation.report import ModelEvaluation
    from labsat.readout import QueryStats
    from labsat.store import Store
    from labsat.training.config import TrainConfig
    from labsat.training.physical import PhysicalLayer

__all__ = ["GROUP", "forget_system_kinds", "known_system_types"]  # the registry's tables, re-exported

GROUP = SYSTEMS


class UnsupportedSystem(LabsatError):
    """A bench whose system lacks what a command asks of it (or that no installed kind describes)."""


class System(Protocol):
    """What the core asks of every System: the counters of its device use (calibration and training cost)."""

    @property
    def stats(self) -> QueryStats: ...


class CalibrationSettings(NamedTuple):
    """One options model of a kind's calibration, as ``calibrate_bench``, the CLI and the REST job take it."""

    parameter: str
    """Its keyword of :func:`~labsat.calibration.calibrate_bench` and field of the ``calibrate`` job."""
    model: builtins.type[BaseModel]
    prefix: str = ""
    """Its ``labsat calibrate`` options' prefix (``lut`` → ``--lut-step``); empty: none."""
    help: str = ""
    """What the options tune, for the job's documentation ("MZI mesh: how the fit measures and fits")."""


class SimulatedChips(Protocol):
    """How the ``sim`` driver simulates a kind's instruments (:class:`labsat.simulators.plugin.ChipKind` is one).

    Only the ``sim`` driver reads it, finding the kind through its entry point; what the core needs to know
    is which roles the simulated devices take.
    """

    @property
    def roles(self) -> Mapping[str, str]:
        """Each ``options.role`` a simulated device takes, and the device kind it must be."""
        ...


class Calibration(Protocol):
    """How a kind is calibrated: what ``labsat calibrate``, the ``calibrate`` job and training's on-demand run call."""

    @property
    def record(self) -> RecordType:
        """The record class its calibrations are stored as (its ``kind`` is the system's ``type``)."""
        ...

    @property
    def label(self) -> str:
        """What the calibration is called where its options are refused elsewhere ("an MZI mesh's fit")."""
        ...

    @property
    def parameters(self) -> tuple[str, ...]:
        """Its keywords of :func:`~labsat.calibration.calibrate_bench` (``resume`` among them: it resumes)."""
        ...

    @property
    def settings(self) -> tuple[CalibrationSettings, ...]:
        """Those of its parameters that are options models (each also one of :attr:`parameters`)."""
        ...

    def run(
        self,
        bench: Bench,
        store: Store,
        settings: Mapping[str, Any],
        progress: Progress | None,
        observe: Observer | None = None,
    ) -> StoredCalibration:
        """Calibrate ``bench`` with ``settings`` (only its own :attr:`parameters`); the finished record, saved.
        ``observe`` hears of each measurement a kind can show live (a kind with none never calls it)."""
        ...

    def report(self, record: StoredCalibration, store: Store, *, figures: bool = True) -> CalibrationReport:
        """One of its records as the commands and the job show it (with ``figures``: its plots written too)."""
        ...


class Training(Protocol):
    """What training asks of a kind: the network it affords and the layer (device and twin) it trains through."""

    @property
    def disturbances(self) -> tuple[str, ...]:
        """Disturbances FD-SAT may train against (a D2NN's mask misalignment); empty: FD-SAT is refused."""
        ...

    def network(self, bench: Bench, config: TrainConfig, dataset: Dataset) -> TrainConfig:
        """``config`` fitted to the system and ``dataset``; what cannot run here is refused, before any device time."""
        ...

    def layer(self, bench: Bench, record: StoredCalibration, outputs: int) -> PhysicalLayer:
        """The system as training sees it, with ``record``'s calibration applied; ``outputs``: the last width."""
        ...


class Evaluation(Protocol):
    """What ``labsat evaluate`` can measure on a kind."""

    @property
    def sweeps(self) -> tuple[str, ...]:
        """The perturbation sweeps it runs; asking for another is refused by name."""
        ...

    @property
    def default_sweeps(self) -> tuple[str, ...]:
        """The sweeps run when none are asked for."""
        ...

    def evaluate(
        self, bench: Bench, store: Store, model: StoredNetwork, settings: EvaluationSettings
    ) -> ModelEvaluation:
        """Evaluate stored ``model`` on ``bench``."""
        ...


class SystemKind(Protocol):
    """One physical system: the parts each layer of the core calls (see the module doc)."""

    @property
    def type(self) -> str:
        """The bench file's ``system.type`` (also the ``kind`` of its calibration records and its models' system)."""
        ...

    @property
    def spec(self) -> builtins.type[SystemSpec]:
        """The model of the bench file's ``system:`` section."""
        ...

    @property
    def system(self) -> Callable[..., System]:
        """Builds the System from ``spec=``, its roles' guarded devices (by role), ``clock``, ``torch_device``
        and ``streamer``."""
        ...

    @property
    def calibration(self) -> Calibration: ...

    @property
    def training(self) -> Training: ...

    @property
    def evaluation(self) -> Evaluation: ...

    @property
    def simulator(self) -> SimulatedChips | None:
        """How the ``sim`` driver simulates the system's instruments; None: it cannot."""
        ...


@dataclass(frozen=True)
class Kind:
    """A :class:`SystemKind` assembled from its parts: what a plugin's entry point usually names."""

    type: str
    spec: builtins.type[SystemSpec]
    system: Callable[..., System]
    calibration: Calibration
    training: Training
    evaluation: Evaluation
    simulator: SimulatedChips | None = None


def system_kind(system_type: str) -> SystemKind:
    """The kind registered for ``system_type``; an unknown type is refused, naming the known ones."""
    try:
        kind: SystemKind = load_system_kind(system_type)
    except UnknownSystemKind as exc:
        raise UnsupportedSystem(str(exc)) from None
    return kind


def installed_kinds() -> list[SystemKind]:
    """Every installed kind, by type."""
    return [system_kind(name) for name in known_system_types()]


def calibration_settings() -> list[CalibrationSettings]:
    """Every installed kind's calibration options models, in type order."""
    return [setting for kind in installed_kinds() for setting in kind.calibration.settings]


def bench_kind(bench: Bench) -> SystemKind:
    """The kind of ``bench``'s system."""
    return system_kind(bench.spec.system.type)


def build_system(bench: Bench) -> System:
    """The System a bench file's ``system:`` section describes, over the bench's guarded devices."""
    spec = bench.spec.system
    devices: dict[str, Any] = {}
    for need in spec.device_roles():
        device = bench.device(need.device)
        if need.position is None:
            devices[need.role] = device
        else:
            devices.setdefault(need.role, []).append(device)
    return bench_kind(bench).system(
        spec=spec, **devices, clock=bench.clock, torch_device=bench.torch_device, streamer=bench.streamer
    )


S = TypeVar("S")


def system_of(bench: Bench, system_type: type[S]) -> S:
    """``bench``'s System as ``system_type``, for code of one kind that holds a bench; another kind is refused.

    A kind's own procedures use it to name their System's type; the core never needs it.
    """
    system = bench.system
    if not isinstance(system, system_type):
        raise UnsupportedSystem(
            f"bench {bench.name!r} is a {bench.spec.system.label}; this needs a {system_type.__name__}"
        )
    return system
