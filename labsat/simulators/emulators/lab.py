"""Emulated instruments started by a bench file: what an ``emulate://`` address means.

A device entry keeps its real driver and names an emulated instrument as its address::

    heaters:
      driver: qontrol                   # the real driver code runs...
      address: emulate://mrr/heaters    # ...against an emulated Qontrol on the simulated chip's heaters

``emulate://<chip>/<role>`` reads: start an emulator that speaks this driver's protocol, backed by
the device of role ``<role>`` on the bench's simulated ``<chip>`` — the same device ``driver: sim``
with ``options: {role: <role>}`` would give, on the one chip all devices of the bench share. When
the driver opens its link (:func:`labsat.drivers.instrument.open_link`) it calls :func:`serve`, which
starts the emulator and returns the concrete address the driver then connects to:
``labsatemu://<key>`` (a pyserial URL) for serial instruments, ``TCPIP::127.0.0.1::<port>::SOCKET``
for SCPI instruments served over TCP on the loopback interface.

All emulators of one open bench live in one :class:`EmulatedLab`, ``bench.shared["emulators"]``;
tests reach an emulator's fault switches through it (``lab.emulator("heaters").faults.cut = 1``).
:meth:`EmulatedLab.close` stops them; so does garbage collection of the lab, and process exit.
"""

from __future__ import annotations

import itertools
import logging
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from labsat.benchfile import DeviceSpec
from labsat.errors import BenchFileError
from labsat.registry import BenchContext, driver_factory

from ..plugin import STREAMER_KEY
from . import protocol_labsatemu
from .laser import TunableLaserEmulator
from .qontrol import QontrolEmulator
from .qontrol import module as qontrol_module
from .scpi import DacEmulator, DaqEmulator
from .tcp import TcpServer
from .wire import LineEmulator

log = logging.getLogger(__name__)

SHARED_KEY = "emulators"
_lab_numbers = itertools.count()


@dataclass(frozen=True)
class EmulatorKind:
    """How to emulate one driver's instrument: build it around a backend, and serve it over ``wire``."""

    build: Callable[[Any, DeviceSpec], LineEmulator]
    wire: str  # "serial" or "tcp"


def _qontrol(backend: Any, spec: DeviceSpec) -> QontrolEmulator:
    """A chain of Qontrol modules: ``options.emulated_chain`` lists them (``[Q8iv, Q8b, {model: Q8iv,
    channels: 16}]``); by default as many Q8iv as the channels need."""
    assert spec.channels is not None
    resistance = [lim.resistance_ohm or math.inf for lim in spec.channel_limits_list()]
    chain = spec.options.get("emulated_chain")
    modules = None if chain is None else [qontrol_module(entry) for entry in chain]
    return QontrolEmulator(backend, resistance, first=spec.channels.first, modules=modules)


def _dac(backend: Any, spec: DeviceSpec) -> DacEmulator:
    assert spec.channels is not None
    return DacEmulator(backend, first=spec.channels.first)


def _daq(backend: Any, spec: DeviceSpec) -> DaqEmulator:
    assert spec.channels is not None
    return DaqEmulator(backend, first=spec.channels.first)


def _laser(backend: Any, spec: DeviceSpec) -> TunableLaserEmulator:
    """A Keysight tunable laser in slot ``options.slot`` (default 0), lighting the chip through ``backend``."""
    return TunableLaserEmulator(backend, slot=int(spec.options.get("slot", 0)))


KINDS: dict[str, EmulatorKind] = {
    "qontrol": EmulatorKind(_qontrol, "serial"),
    "scpi_dac": EmulatorKind(_dac, "tcp"),
    "scpi_daq": EmulatorKind(_daq, "tcp"),
    "keysight_tls": EmulatorKind(_laser, "tcp"),
}
BACKEND_DRIVERS = {"mrr": "sim"}  # chip named in an emulate:// address -> driver of its simulated devices


class EmulatedLab:
    """The emulators of one open bench, and what it takes to stop them."""

    def __init__(self) -> None:
        self.number = next(_lab_numbers)
        self.emulators: dict[str, LineEmulator] = {}
        self._servers: list[TcpServer] = []
        self._serial_keys: list[str] = []
        self._finalizer = weakref.finalize(self, _stop, self._servers, self._serial_keys)

    def emulator(self, device: str) -> LineEmulator:
        return self.emulators[device]

    def start(self, device: str, emulator: LineEmulator, wire: str) -> str:
        """Serve ``emulator`` for ``device``; returns the address its driver connects to."""
        self.emulators[device] = emulator
        if wire == "serial":
            key = f"lab{self.number}-{device}"
            self._serial_keys.append(key)
            return protocol_labsatemu.publish(key, emulator)
        server = TcpServer(emulator, name=f"lab{self.number}-{device}")
        self._servers.append(server)
        return server.address

    def close(self) -> None:
        """Stop every server and withdraw every serial port; idempotent."""
        self._finalizer()


def _stop(servers: list[TcpServer], serial_keys: list[str]) -> None:
    for server in servers:
        server.stop()
    for key in serial_keys:
        protocol_labsatemu.withdraw(key)
    servers.clear()
    serial_keys.clear()


def serve(name: str, spec: DeviceSpec, context: BenchContext) -> str:
    """Start the emulator an ``emulate://<chip>/<role>`` address asks for; returns the address to connect to."""
    assert spec.address is not None
    where = f"devices.{name}.address"
    parts = urlsplit(spec.address)
    chip, role = parts.netloc, parts.path.strip("/")
    kind = KINDS.get(spec.driver)
    if kind is None:
        raise BenchFileError(context.path, where, f"no emulator for driver {spec.driver!r} (have: {', '.join(KINDS)})")
    if chip not in BACKEND_DRIVERS or not role:
        raise BenchFileError(
            context.path, where, f"expected emulate://<chip>/<role> with chip in {list(BACKEND_DRIVERS)}"
        )
    backend_driver = BACKEND_DRIVERS[chip]
    backend_spec = spec.model_copy(
        update={"driver": backend_driver, "address": f"sim://{chip}/{role}", "options": {"role": role}}
    )
    backend = driver_factory(backend_driver)(name, backend_spec, context)
    # The simulated chip offers itself as the bench's batch streamer; an emulated bench must not take
    # that shortcut past its own modulator and detector instruments: every sample crosses the wire.
    context.shared.pop(STREAMER_KEY, None)
    lab = context.shared.get(SHARED_KEY)
    if lab is None:
        lab = context.shared[SHARED_KEY] = EmulatedLab()
    try:
        emulator = kind.build(backend, spec)
    except ValueError as exc:  # an emulated setup the bench file describes wrongly (an unknown model)
        raise BenchFileError(context.path, f"devices.{name}.options", str(exc)) from None
    address = lab.start(name, emulator, kind.wire)
    log.info("%s: emulated %s on %s, backed by %s/%s", name, spec.driver, address, chip, role)
    return address
