"""The ``sim`` driver: simulated instruments for bench files (``driver: sim``).

All ``sim`` devices of one bench share one simulated chip, chosen by ``system.type`` (an MRR bank or an
MZI mesh) and built on first use from the bench's ``simulator:`` section, ``system`` size, ``seed``,
clock and torch device, so that a heater write moves a detector reading. ``options.role`` says which
instrument a device is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from labsat.benchfile import DeviceSpec
from labsat.errors import BenchFileError
from labsat.registry import BenchContext
from labsat.simulators.mrr import MRRChipSimulator, MRRSimConfig, SimDetector, SimulatedChip, SimVoltageSource
from labsat.simulators.mzi import MZIChipSimulator, MZISimConfig

ROLES = {"heaters": "voltage_source", "modulators": "voltage_source", "detectors": "detector"}
"""Each role and the device kind it must be declared as."""

CHIP_KEY = "mrr_chip"
MZI_CHIP_KEY = "mzi_chip"
STREAMER_KEY = "streamer"


def build_sim_device(name: str, spec: DeviceSpec, context: BenchContext) -> Any:
    """Factory registered as the ``sim`` entry point: ``(name, spec, context) -> device``."""
    unknown = set(spec.options) - {"role"}
    if unknown:
        raise BenchFileError(context.path, f"devices.{name}.options.{sorted(unknown)[0]}", "unknown key")
    role = spec.options.get("role")
    if role not in ROLES:
        raise BenchFileError(
            context.path,
            f"devices.{name}.options.role",
            f"a sim device needs role {', '.join(repr(r) for r in ROLES)}, got {role!r}",
        )
    if spec.kind != ROLES[role]:
        raise BenchFileError(context.path, f"devices.{name}.kind", f"a sim {role} device is a {ROLES[role]}")
    chip = _chip(context)
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


def _sim_config(context: BenchContext, config_type: type[ConfigT]) -> ConfigT:
    """The bench's ``simulator:`` section as ``config_type``; errors name the offending key."""
    try:
        return config_type.model_validate(context.bench.simulator)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(["simulator", *(str(part) for part in first["loc"])])
        message = {"extra_forbidden": "unknown key"}.get(first["type"], first["msg"].removeprefix("Value error, "))
        raise BenchFileError(context.path, key, message) from None


def _mrr_chip(context: BenchContext) -> MRRChipSimulator:
    system = context.bench.system
    config = _sim_config(context, MRRSimConfig)
    return MRRChipSimulator(config, system.rows, system.cols, context.bench.seed, context.clock, context.torch_device)


def _mzi_chip(context: BenchContext) -> MZIChipSimulator:
    config = _sim_config(context, MZISimConfig)
    modes = context.bench.system.modes
    return MZIChipSimulator(config, modes, context.bench.seed, context.clock, context.torch_device)


CHIPS: dict[str, tuple[str, Callable[[BenchContext], SimulatedChip]]] = {
    "mrr_bank": (CHIP_KEY, _mrr_chip),
    "mzi_mesh": (MZI_CHIP_KEY, _mzi_chip),
}
"""Per ``system.type``: the ``shared`` key of its simulated chip and how to build it."""


def _chip(context: BenchContext) -> SimulatedChip:
    """The bench's simulated chip, built once and shared (also as its batch streamer when all-simulated)."""
    system = context.bench.system
    if system.type not in CHIPS:
        raise BenchFileError(context.path, "system.type", f"the sim driver cannot simulate a {system.type!r} system")
    key, build = CHIPS[system.type]
    chip = context.shared.get(key)
    if chip is not None:
        return chip
    chip = build(context)
    context.shared[key] = chip
    if all(context.bench.devices[getattr(system, role)].driver == "sim" for role in ("modulators", "detectors")):
        # Streaming is the shortcut past the modulator and detector instruments; a bench that reaches them
        # through real drivers (emulated instruments) must cross the wire for every sample instead.
        context.shared[STREAMER_KEY] = chip
    return chip
