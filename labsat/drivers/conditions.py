"""Named instrument conditions: states in which a reading or an output does not mean what it says.

Each is an :class:`~labsat.errors.InstrumentError`, so the guard treats it like any failed exchange
(it reads the outputs back and trusts only what the instrument reports), and each names the device,
its address, the channel and the condition, so a user can tell at once which instrument is where:

- :class:`InCompliance`: an SMU limits its current, so its output no longer holds the programmed
  voltage (the reading says the output, not the request, is what the load sees);
- :class:`OutputOff`: a reading was asked of an output that is switched off (a Keithley 24xx then
  answers nothing and queues error +803);
- :class:`OutputsLost`: after a reconnect the instrument no longer outputs what labsat last set (a
  power cycle); the driver does not switch anything on again by itself;
- :class:`OverRange`: a power meter reports 9.9E37, the SCPI over-range value, instead of a number.
"""

from __future__ import annotations

from labsat.errors import InstrumentError


def channel_where(where: str, channel: int | str, name: str | None = None) -> str:
    """``where`` and a bench channel: its number on the instrument, and its bench name where it has one
    (``smu (TCPIP::…) channel 1 (bias0)``)."""
    return f"{where} channel {channel}" + (f" ({name})" if name else "")


class InstrumentCondition(InstrumentError):
    """An instrument is in a named condition on one channel; ``condition`` is the short name."""

    condition = "condition"

    def __init__(self, where: str, channel: int | str, detail: str, name: str | None = None) -> None:
        self.where = where
        self.channel = channel
        self.detail = detail
        super().__init__(f"{channel_where(where, channel, name)}: {self.condition}: {detail}")


class InCompliance(InstrumentCondition):
    condition = "in compliance"


class OutputOff(InstrumentCondition):
    condition = "output off"


class OutputsLost(InstrumentCondition):
    condition = "outputs lost"


class OverRange(InstrumentCondition):
    condition = "over range"
