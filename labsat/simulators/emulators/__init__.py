"""Wire-level emulators: instruments that speak their real protocols, backed by the simulators' physics.

The real drivers run against them unchanged, so CI exercises the driver code end to end without
hardware. Serial instruments are reached through the ``labsatemu://`` pyserial URL scheme
(registered when this package is imported), SCPI instruments through TCP servers on 127.0.0.1.
A bench file starts them with ``emulate://<chip>/<role>`` addresses: see :mod:`.lab`. Every
emulator has fault switches (:class:`.wire.Faults`) for the fault-handling tests.
"""

from __future__ import annotations

import serial

from .lab import EmulatedLab, serve
from .wire import Faults, LineEmulator

if __name__ not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(__name__)

__all__ = ["EmulatedLab", "Faults", "LineEmulator", "serve"]
