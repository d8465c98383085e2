"""The ``sim`` driver: simulated MRR-bank instruments for bench files (``driver: sim``).

All ``sim`` devices of one bench share one :class:`~labsat.simulators.mrr.MRRChipSimulator`, built on
first use from the bench's ``simulator:`` section, ``system`` size, ``seed``, clock and torch device,
so that a heater write moves a detector reading. ``options.role`` says which instrument a device is.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from labsat.benchfile import DeviceSpec, MRRSystemSpec
from labsat.errors import BenchFileError
from labsat.registry import BenchContext
from labsat.simulators.mrr import MRRChipSimulator, MRRSimConfig, SimDetector, SimVoltageSource

ROLES = {"heaters": "voltage_source", "modulators": "voltage_source", "detectors": "detector"}
"""Each role and the device kind it must be declared as."""

CHIP_KEY = "mrr_chip"
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
    expected = {"heaters": chip.rows * chip.cols, "modulators": chip.cols, "detectors": chip.rows}[role]
    assert spec.channels is not None  # the bench file requires channels for both kinds
    if spec.channels.count != expected:
        raise BenchFileError(
            context.path,
            f"devices.{name}.channels",
            f"a sim {role} device of a {chip.rows}x{chip.cols} bank has {expected} channels, not {spec.channels.count}",
        )
    if role == "detectors":
        return SimDetector(chip, name)
    state_path = None
    if context.data_dir is not None:
        state_path = context.data_dir / "sim-state" / f"{context.bench.name}.{name}.json"
    return SimVoltageSource(chip, role, name, state_path)


def _chip(context: BenchContext) -> MRRChipSimulator:
    """The bench's simulated chip, built once and shared (also as its batch streamer when all-simulated)."""
    chip = context.shared.get(CHIP_KEY)
    if chip is not None:
        return chip
    system = context.bench.system
    if not isinstance(system, MRRSystemSpec):
        raise BenchFileError(context.path, "system.type", "the sim driver simulates an 'mrr_bank' system only")
    try:
        config = MRRSimConfig.model_validate(context.bench.simulator)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(["simulator", *(str(part) for part in first["loc"])])
        message = {"extra_forbidden": "unknown key"}.get(first["type"], first["msg"].removeprefix("Value error, "))
        raise BenchFileError(context.path, key, message) from None
    chip = MRRChipSimulator(
        config, system.rows, system.cols, context.bench.seed, context.clock, context.torch_device
    )
    context.shared[CHIP_KEY] = chip
    if all(context.bench.devices[getattr(system, role)].driver == "sim" for role in ("modulators", "detectors")):
        # Streaming is the shortcut past the modulator and detector instruments; a bench that reaches them
        # through real drivers (emulated instruments) must cross the wire for every sample instead.
        context.shared[STREAMER_KEY] = chip
    return chip
