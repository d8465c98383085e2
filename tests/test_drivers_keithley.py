"""The Keithley 24xx SMU driver, pinned down by exact command/reply pairs."""

from __future__ import annotations

import numpy as np
import pytest

from labsat.benchfile import ChannelLimits, DeviceSpec
from labsat.drivers.keithley import Keithley24xx, build
from labsat.drivers.testing import Pair, expected_protocol
from labsat.drivers.transport import Link
from labsat.errors import InstrumentError

IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4000001,C32"
OK = '0,"No error"'
LIMITS = ChannelLimits(voltage=(-5.0, 5.0), resistance_ohm=1000.0, current_max_ma=2.0)
CONNECT: list[Pair] = [
    ("*IDN?", IDN),
    (":SOUR:FUNC VOLT;:SYST:ERR?", OK),
    (":SOUR:VOLT:RANG 5;:SYST:ERR?", OK),
    (":SENS:CURR:PROT 0.002;:SYST:ERR?", OK),
    (":FORM:ELEM VOLT,CURR;:SYST:ERR?", OK),
    (":OUTP?", "0"),  # output off: the present output is 0 V, whatever the level
]


def _smu(link: Link) -> Keithley24xx:
    return Keithley24xx("smu", link, [1], [LIMITS], 0.002).connect()


def test_connect_sets_function_range_compliance_and_reading_format() -> None:
    with expected_protocol(CONNECT) as link:
        smu = _smu(link)
    assert smu.identity() == IDN
    assert smu.n_channels == 1


def test_write_sets_the_level_and_switches_the_output_on_once() -> None:
    pairs = [
        *CONNECT,
        (":SOUR:VOLT:LEV 1.500000;:SYST:ERR?", OK),
        (":OUTP?", "0"),
        (":OUTP 1;:SYST:ERR?", OK),
        (":SOUR:VOLT:LEV 2.000000;:SYST:ERR?", OK),
        (":OUTP?", "1"),
        (":OUTP?", "1"),
        (":SOUR:VOLT:LEV?", "2.000000"),
        (":READ?", "+2.000000E+00,+2.000000E-03"),
    ]
    with expected_protocol(pairs) as link:
        smu = _smu(link)
        smu.write_voltages(np.array([0]), np.array([1.5]))
        smu.write_voltages(np.array([0]), np.array([2.0]))
        assert smu.read_voltages().tolist() == [2.0]
        assert smu.measure() == (2.0, 0.002)


def test_outputs_off_sets_zero_then_disables_the_output() -> None:
    pairs = [*CONNECT, (":SOUR:VOLT:LEV 0.000000;:SYST:ERR?", OK), (":OUTP 0;:SYST:ERR?", OK)]
    with expected_protocol(pairs) as link:
        _smu(link).outputs_off()


def test_instrument_error_names_command_and_every_queued_error() -> None:
    pairs = [
        *CONNECT,
        (":SOUR:VOLT:LEV 4.000000;:SYST:ERR?", '-222,"Data out of range"'),
        (":SYST:ERR?", '-221,"Settings conflict"'),
        (":SYST:ERR?", OK),
        (":OUTP?", "0"),  # the driver reads the output back after the failed write
    ]
    with expected_protocol(pairs) as link:
        smu = _smu(link)
        with pytest.raises(
            InstrumentError,
            match=r"smu \(scripted\): ':SOUR:VOLT:LEV 4.000000' was refused: -222 Data out of range; "
            r"-221 Settings conflict",
        ):
            smu.write_voltages(np.array([0]), np.array([4.0]))


def test_a_bench_without_a_current_limit_must_name_a_compliance() -> None:
    spec = DeviceSpec(
        driver="keithley24xx",
        kind="voltage_source",
        address="TCPIP::127.0.0.1::5025::SOCKET",
        channels={"count": 1},
        limits={"voltage": (0.0, 5.0)},
    )
    with pytest.raises(InstrumentError, match="needs a current compliance"):
        build("smu", spec, None)  # type: ignore[arg-type]  # refused before the context is used
