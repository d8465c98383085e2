"""A multichannel photodetector/DAQ reader over SCPI, Keysight style (34970A/DAQ970A, 34465A).

Configured once, at connect and after every reconnect: ``*CLS`` (an error someone else left in the
queue must not fail the connect), then ``CONF:VOLT:DC (@101:108)`` makes the bench's channels the
scan list, then ``SENS:VOLT:DC:APER t,(@101:108)`` sets the ADC aperture from
``options.integration_time_s`` (read back per channel either way; the longest is
:attr:`ScpiDaq.integration_time`). A reading is then ``READ?`` (or, with ``options.fetch``,
``INIT`` and ``FETC?``): it scans the list as configured. Never ``MEAS?``: it is ``CONF`` plus
``READ?`` and puts every channel back to its default settings, so the aperture set at connect would
be lost on the first reading.

The channel numbers are the bench's: ``channels: {count: 8, first: 101}`` is ``(@101:108)``, a
contiguous run as ``(@first:last)``. The reply is one comma-separated number per channel, in channel
order; a reply with the wrong count is garbled and retried.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from labsat.benchfile import DeviceSpec
from labsat.registry import BenchContext

from .instrument import Control, Instrument, Scpi, float_array_of, floats_of, open_link, scpi_dialect, strict_range
from .transport import Link, Transport


def channel_list(channels: Sequence[int]) -> str:
    """SCPI channel list: ``(@1:8)`` for a contiguous run, ``(@1,3,5)`` otherwise."""
    if list(channels) == list(range(channels[0], channels[0] + len(channels))) and len(channels) > 1:
        return f"(@{channels[0]}:{channels[-1]})"
    return "(@" + ",".join(str(ch) for ch in channels) + ")"


class ScpiDaq(Instrument):
    """A SCPI voltage-input instrument as a labsat :class:`~labsat.devices.Detector`."""

    controls: Mapping[str, Control] = {
        "configure": Control(None, "CONF:VOLT:DC {channels}", doc="scan list, default settings"),
        "voltages": Control("READ?", None, floats_of(1), doc="one reading per listed channel, volts"),
        "fetch": Control("FETC?", None, floats_of(1), doc="the readings an INIT took"),
        "aperture": Control(
            "SENS:VOLT:DC:APER? {channels}",
            "SENS:VOLT:DC:APER {value:g},{channels}",
            floats_of(1),
            strict_range(1e-6, 10.0),
        ),
    }

    def __init__(
        self,
        name: str,
        link: Link,
        channels: Sequence[int],
        integration_time_s: float | None = None,
        dialect: Scpi | None = None,
        fetch: bool = False,
    ) -> None:
        super().__init__(name, link, dialect)
        self.channels = tuple(channels)
        self.fetch = fetch
        self._channel_list = channel_list(self.channels)
        self._wanted_aperture = integration_time_s
        self._aperture = 0.0
        readings = float_array_of(len(channels))
        self.controls = {
            **self.controls,
            "voltages": replace(self.controls["voltages"], parse=readings),
            "fetch": replace(self.controls["fetch"], parse=readings),
            "aperture": replace(self.controls["aperture"], parse=floats_of(len(channels))),
        }

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def integration_time(self) -> float:
        return self._aperture

    @property
    def error_where(self) -> str:
        """Every setting and reading is for the bench's scan list: a refusal names its channels."""
        return f"{self.where} channels {self._channel_list}"

    def configure(self) -> None:
        self.send("*CLS")  # an error someone else left in the queue must not fail the connect
        self.send(self.command("configure", None, channels=self._channel_list))
        if self._wanted_aperture is not None:
            self.set("aperture", self._wanted_aperture, channels=self._channel_list)
        self._aperture = max(self.get("aperture", channels=self._channel_list))

    def read(self) -> np.ndarray:
        if self.fetch:
            return self.link.run("INIT;FETC?", self._initiate_and_fetch)
        readings: np.ndarray = self.get("voltages")
        return readings

    def _initiate_and_fetch(self, transport: Transport) -> np.ndarray:
        """``INIT`` then ``FETC?`` as one exchange, so a retry repeats both."""
        self.dialect.confirm(transport, "INIT", self.error_where)
        row = self.controls["fetch"]
        assert row.get is not None
        readings: np.ndarray = row.parse(transport.query(row.get))
        return readings


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
        fetch=bool(spec.options.get("fetch", False)),
    ).connect()
