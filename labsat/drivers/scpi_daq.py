"""A multichannel photodetector/DAQ reader over SCPI: ``MEAS:VOLT? (@1:8)``.

One query reads every channel of the device (a contiguous run as ``(@first:last)``, otherwise a list
``(@1,3,5)``); the reply is one comma-separated number per channel, in channel order. A reply with
the wrong count is garbled and retried. The integration time is the ADC aperture
(``SENS:VOLT:APER``), set at connect time from the bench option ``integration_time_s`` when given and
read back otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from labsat.benchfile import DeviceSpec
from labsat.registry import BenchContext

from .instrument import Control, Instrument, Scpi, floats_of, open_link, scpi_dialect, strict_range
from .transport import Link


def channel_list(channels: Sequence[int]) -> str:
    """SCPI channel list: ``(@1:8)`` for a contiguous run, ``(@1,3,5)`` otherwise."""
    if list(channels) == list(range(channels[0], channels[0] + len(channels))) and len(channels) > 1:
        return f"(@{channels[0]}:{channels[-1]})"
    return "(@" + ",".join(str(ch) for ch in channels) + ")"


class ScpiDaq(Instrument):
    """A SCPI voltage-input instrument as a labsat :class:`~labsat.devices.Detector`."""

    controls: Mapping[str, Control] = {
        "voltages": Control("MEAS:VOLT? {channels}", None, floats_of(1), doc="one reading per listed channel, volts"),
        "aperture": Control("SENS:VOLT:APER?", "SENS:VOLT:APER {value:g}", float, strict_range(1e-6, 10.0)),
    }

    def __init__(
        self,
        name: str,
        link: Link,
        channels: Sequence[int],
        integration_time_s: float | None = None,
        dialect: Scpi | None = None,
    ) -> None:
        super().__init__(name, link, dialect)
        self.channels = tuple(channels)
        self._channel_list = channel_list(self.channels)
        self._wanted_aperture = integration_time_s
        self._aperture = 0.0
        self.controls = {
            **self.controls,
            "voltages": replace(self.controls["voltages"], parse=floats_of(len(channels))),
        }

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def integration_time(self) -> float:
        return self._aperture

    def configure(self) -> None:
        if self._wanted_aperture is not None:
            self.set("aperture", self._wanted_aperture)
        self._aperture = float(self.get("aperture"))

    def read(self) -> np.ndarray:
        return np.array(self.get("voltages", channels=self._channel_list))


def build(name: str, spec: DeviceSpec, context: BenchContext) -> ScpiDaq:
    """Entry point ``scpi_daq``."""
    assert spec.channels is not None
    integration = spec.options.get("integration_time_s")
    return ScpiDaq(
        name,
        open_link(name, spec, context),
        list(spec.channels.instrument_channels),
        None if integration is None else float(integration),
        scpi_dialect(spec.options),
    ).connect()
