"""The ``sim`` driver: simulated instruments for bench files (``driver: sim``).

All ``sim`` devices of one bench share one simulated chip, which the bench's system kind supplies
(:attr:`SystemKind.simulator <labsat.systems.kind.SystemKind.simulator>`: a :class:`ChipKind`, e.g. an MRR
bank, an MZI mesh or a D2NN table), built on first use from the bench's ``simulator:`` section, ``system``
size, ``seed``, clock and torch device, so that a heater write (or a mask frame) moves a detector reading.
``options.role`` says which instrument a device is. The chip is shared as
:data:`~labsat.truth.SIMULATED_CHIP`, where evaluation and tests find its ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from labsat.benchfile import DeviceKind, DeviceSpec
from labsat.entrypoints import UnknownSystemKind, load_system_kind
from labsat.errors import BenchFileError
from labsat.registry import BenchContext
from labsat.simulators.d2nn import SLM_OPTIONS, D2NNChipSimulator, D2NNSimConfig, build_sim_slm
from labsat.simulators.instruments import SimDetector, SimVoltageSource
from labsat.simulators.light import build_sim_light
from labsat.simulators.mrr import MRRChipSimulator, MRRSimConfig
from labsat.simulators.mzi import MZIChipSimulator, MZISimConfig
from labsat.specs.d2nn import D2NNSystemSpec
from labsat.specs.mrr import MRRSystemSpec
from labsat.specs.mzi import MZISystemSpec
from labsat.truth import SIMULATED_CHIP

ROLES: dict[str, DeviceKind] = {"heaters": "voltage_source", "modulators": "voltage_source", "detectors": "detector"}
"""Each role of an integrated chip (MRR, MZI) and the device kind it must be declared as."""

D2NN_ROLES: dict[str, DeviceKind] = {"mask": "slm", "input": "slm", "detectors": "detector"}
"""Each role of a D2NN table and the device kind it must be declared as."""

STREAMER_KEY = "streamer"


def build_sim_device(name: str, spec: DeviceSpec, context: BenchContext) -> Any:
    """Factory registered as the ``sim`` entry point: ``(name, spec, context) -> device``."""
    kind = _chip_kind(context)
    if spec.kind == "light_source":  # any chip's laser: not one of its roles
        return build_sim_light(_chip(context, kind), name, spec, context)
    allowed = SLM_OPTIONS if spec.kind == "slm" else {"role"}
    unknown = set(spec.options) - allowed
    if unknown:
        raise BenchFileError(context.path, f"devices.{name}.options.{sorted(unknown)[0]}", "unknown key")
    role = spec.options.get("role")
    if role not in kind.roles:
        raise BenchFileError(
            context.path,
            f"devices.{name}.options.role",
            f"a sim device of a {context.bench.system.type} bench needs role "
            f"{', '.join(repr(r) for r in kind.roles)}, got {role!r}",
        )
    if spec.kind != kind.roles[role]:
        raise BenchFileError(context.path, f"devices.{name}.kind", f"a sim {role} device is a {kind.roles[role]}")
    chip = _chip(context, kind)
    if kind.device is not None:
        return kind.device(chip, name, spec, context)
    if spec.kind == "slm":
        return build_sim_slm(chip, name, spec, context)
    expected = chip.channel_count(role)
    assert spec.channels is not None  # the bench file requires channels for both kinds
    if spec.channels.count != expected:
        raise BenchFileError(
            context.path,
            f"devices.{name}.channels",
            f"a sim {role} device of a {chip.label} has {expected} channels, not {spec.channels.count}",
        )
    if role == "detectors":
        return SimDetector(chip, name)
    state_path = None
    if context.data_dir is not None:
        state_path = context.data_dir / "sim-state" / f"{context.bench.name}.{name}.json"
    return SimVoltageSource(chip, role, name, state_path)


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def sim_config(context: BenchContext, config_type: type[ConfigT]) -> ConfigT:
    """The bench's ``simulator:`` section as ``config_type``; errors name the offending key."""
    try:
        return config_type.model_validate(context.bench.simulator)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(["simulator", *(str(part) for part in first["loc"])])
        message = {"extra_forbidden": "unknown key"}.get(first["type"], first["msg"].removeprefix("Value error, "))
        raise BenchFileError(context.path, key, message) from None


def mrr_chip(context: BenchContext) -> MRRChipSimulator:
    """The simulated chip of an MRR bank's bench."""
    system = context.bench.system
    assert isinstance(system, MRRSystemSpec)  # the MRR kind's chip, built for its own spec
    config = sim_config(context, MRRSimConfig)
    return MRRChipSimulator(config, system.rows, system.cols, context.bench.seed, context.clock, context.torch_device)


def mzi_chip(context: BenchContext) -> MZIChipSimulator:
    """The simulated chip of an MZI mesh's bench."""
    system = context.bench.system
    assert isinstance(system, MZISystemSpec)
    config = sim_config(context, MZISimConfig)
    modes = system.modes
    return MZIChipSimulator(config, modes, context.bench.seed, context.clock, context.torch_device)


def d2nn_chip(context: BenchContext) -> D2NNChipSimulator:
    """The simulated table of a D2NN's bench."""
    config = sim_config(context, D2NNSimConfig)
    system = context.bench.system
    assert isinstance(system, D2NNSystemSpec)
    return D2NNChipSimulator(
        config, system.optics(), system.input_side, context.bench.seed, context.clock, context.torch_device
    )


class ChipKind(NamedTuple):
    """How the sim driver simulates one system kind's instruments."""

    build: Callable[[BenchContext], Any]
    roles: dict[str, DeviceKind]
    streamed: tuple[str, ...]
    """System roles the chip's batch streamer stands in for: it streams only when all of them are simulated."""
    device: Callable[[Any, str, DeviceSpec, BenchContext], Any] | None = None
    """Builds each simulated device from the chip (``chip, name, spec, context``); None: the integrated chips'
    voltage sources and detectors, and a D2NN table's SLMs."""


MRR_CHIP = ChipKind(mrr_chip, ROLES, ("modulators", "detectors"))
MZI_CHIP = ChipKind(mzi_chip, ROLES, ("modulators", "detectors"))
D2NN_CHIP = ChipKind(d2nn_chip, D2NN_ROLES, ("input", "detectors"))


def _chip_kind(context: BenchContext) -> ChipKind:
    system_type = context.bench.system.type
    try:
        kind: ChipKind | None = load_system_kind(system_type).simulator
    except UnknownSystemKind as exc:
        raise BenchFileError(context.path, "system.type", str(exc)) from None
    if kind is None:
        raise BenchFileError(context.path, "system.type", f"the sim driver cannot simulate a {system_type!r} system")
    return kind


def _chip(context: BenchContext, kind: ChipKind) -> Any:
    """The bench's simulated chip, built once and shared (also as its batch streamer when all-simulated)."""
    chip = context.shared.get(SIMULATED_CHIP)
    if chip is not None:
        return chip
    chip = kind.build(context)
    context.shared[SIMULATED_CHIP] = chip
    system = context.bench.system
    if all(context.bench.devices[getattr(system, role)].driver == "sim" for role in kind.streamed):
        # Streaming is the shortcut past the input and detector instruments; a bench that reaches them
        # through real drivers (emulated instruments) must cross the wire for every sample instead.
        context.shared[STREAMER_KEY] = chip
    return chip
