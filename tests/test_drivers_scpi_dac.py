"""The generic SCPI DAC driver, pinned down by exact command/reply pairs."""

from __future__ import annotations

import numpy as np
import pytest

from labsat.benchfile import ChannelLimits
from labsat.drivers.instrument import Scpi
from labsat.drivers.scpi_dac import ScpiDac
from labsat.drivers.testing import Pair, expected_protocol
from labsat.drivers.transport import Link
from labsat.errors import InstrumentError

OK = '0,"No error"'
LIMITS = ChannelLimits(voltage=(0.0, 2.2))
LIMIT_MESSAGE = (
    "SOUR1:VOLT:LIM:LOW 0.000000;:SOUR1:VOLT:LIM:HIGH 2.200000;"
    ":SOUR2:VOLT:LIM:LOW 0.000000;:SOUR2:VOLT:LIM:HIGH 2.200000;:SYST:ERR?"
)
CONNECT: list[Pair] = [
    ("*IDN?", "ACME,DAC2,1,1.0"),
    (LIMIT_MESSAGE, OK),
    ("SOUR1:VOLT?", "0.000000"),
    ("SOUR2:VOLT?", "1.000000"),
]


def _dac(link: Link, compound: bool = True, device_limits: bool = True) -> ScpiDac:
    dialect = Scpi(compound=compound)
    return ScpiDac("mods", link, [1, 2], [LIMITS] * 2, dialect=dialect, device_limits=device_limits).connect()


def test_connect_pushes_the_limits_in_one_message_and_reads_back() -> None:
    with expected_protocol(CONNECT) as link:
        assert _dac(link)._last.tolist() == [0.0, 1.0]


def test_vector_write_is_one_program_message_with_its_error_check() -> None:
    pairs = [*CONNECT, ("SOUR2:VOLT 0.500000;:SOUR1:VOLT 2.000000;:SYST:ERR?", OK)]
    with expected_protocol(pairs) as link:
        _dac(link).write_voltages(np.array([0, 1]), np.array([2.0, 0.5]))


def test_without_compound_messages_each_channel_is_written_and_checked_alone() -> None:
    pairs: list[Pair] = [
        ("*IDN?", "ACME,DAC2,1,1.0"),
        ("SOUR1:VOLT?", "0.000000"),
        ("SOUR2:VOLT?", "1.000000"),
        ("SOUR2:VOLT 0.500000", None),
        ("SYST:ERR?", OK),
        ("SOUR1:VOLT 2.000000", None),
        ("SYST:ERR?", OK),
    ]
    with expected_protocol(pairs) as link:
        _dac(link, compound=False, device_limits=False).write_voltages(np.array([0, 1]), np.array([2.0, 0.5]))


def test_refused_vector_write_reads_every_channel_back() -> None:
    pairs = [
        *CONNECT,
        ("SOUR2:VOLT 2.100000;:SOUR1:VOLT 2.000000;:SYST:ERR?", '-222,"Data out of range"'),
        ("SYST:ERR?", OK),
        ("SOUR1:VOLT?", "2.000000"),
        ("SOUR2:VOLT?", "1.000000"),
    ]
    with expected_protocol(pairs) as link:
        dac = _dac(link)
        with pytest.raises(InstrumentError, match="-222 Data out of range"):
            dac.write_voltages(np.array([0, 1]), np.array([2.0, 2.1]))
        assert dac._last.tolist() == [2.0, 1.0]
