"""The Qontrol driver against a session recorded with two real Q8iv modules.

The fixture ``tests/fixtures/qontrol_two_q8iv.json`` holds lines of that session copied unchanged
from the vendor's api repository (github.com/takeqontrol/api, branch ``virtual-module``,
``progs/two_q8iv_4.json`` and ``progs/two_q8iv_5.json``). The replay answers every command exactly
as the modules did; the driver must connect, read and write using only commands the modules
answered, and take their replies (units, module IDs without a serial, an overflow) as meant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labsat.benchfile import ChannelLimits
from labsat.drivers.qontrol import QontrolDriver
from labsat.drivers.testing import ReplayTransport
from labsat.drivers.transport import Link, RetryPolicy
from labsat.errors import InstrumentError

RECORDING = Path(__file__).parent / "fixtures" / "qontrol_two_q8iv.json"
# the recorded modules' own limits: a bench asking for them needs no vmax/imax write
FULL = ChannelLimits(voltage=(0.0, 12.0), resistance_ohm=1000.0, current_max_ma=24.0)
RECORDED_VOLTS = [0.2077, 0.2055, 0.2055, 0.2052, 0.2075, 0.2060, 0.2062, 0.2076]  # VALL?, module 1
RECORDED_MA_13 = 18.7170  # IALL?, channel 13 (module 2, channel 5): the one loaded channel


@pytest.fixture
def replay() -> ReplayTransport:
    return ReplayTransport.from_file(RECORDING)


def _driver(replay: ReplayTransport) -> QontrolDriver:
    link = Link("heaters", replay.address, lambda: replay, RetryPolicy(timeout_s=0.1, retries=0, backoff_s=0.0))
    return QontrolDriver("heaters", link, list(range(16)), [FULL] * 16).connect()


def test_the_driver_connects_to_the_recorded_chain_with_recorded_commands_only(replay: ReplayTransport) -> None:
    driver = _driver(replay)
    assert driver.identity() == "Q8iv-0001, Q8iv-****"  # the second module has no serial number
    assert driver.module_channels == (8, 8)
    assert driver.full_scale_v.tolist() == [12.0] * 16
    assert driver.full_scale_ma.tolist() == [24.0] * 16
    assert [c.lower() for c in replay.sent] == [
        "idall?",
        "nchanall?",
        "vfullall?",
        "ifullall?",
        "vmaxall?",
        "imaxall?",
        "vall?",
    ]
    assert replay.unrecorded == []
    assert driver.measured[:8].tolist() == RECORDED_VOLTS  # parsed by pattern, units and all


def test_measurements_are_readings_and_not_set_points(replay: ReplayTransport) -> None:
    driver = _driver(replay)
    currents = driver.read_currents()
    assert currents[13] == RECORDED_MA_13
    assert currents[0] == -0.0036  # a reading a hair below zero is a number, not an error
    assert np.isnan(driver.commanded).all()  # nothing was set: what was read is no set point
    np.testing.assert_allclose(driver.read_voltages()[:8], 0.21, atol=1e-9)  # at the tolerance's resolution


def test_a_recorded_setting_is_acknowledged_and_becomes_the_set_point(replay: ReplayTransport) -> None:
    driver = _driver(replay)
    driver.write_voltages(np.array([0]), np.array([10.913989596801237]))  # the recorded V0=... line
    assert replay.sent[-1] == "v0=10.9139"  # at the wire's resolution, lower case as the device's help
    assert driver.commanded[0] == 10.913989596801237
    assert replay.unrecorded == []


def test_the_recorded_overflow_is_a_refusal_and_the_stream_stays_in_step(replay: ReplayTransport) -> None:
    driver = _driver(replay)
    recorded = "V0=6.48,10.36,1.74,7.55,5.61,11.32,7.23,1.2,2.23,9.51,11.09,6.06,9.64,0.44,9.56,11.09"
    with pytest.raises(InstrumentError, match=r"was refused: E14:00, buffer overflow: instruction buffer overflow"):
        driver.send(recorded)  # the modules answered E14:00 and then E15:00
    assert replay.unread == []  # the trailing E15:00 went with the refusal...
    assert driver.read_currents()[13] == RECORDED_MA_13  # ...so the next reply is the next command's own
    assert replay.unrecorded == []


def test_an_unrecorded_command_gets_what_the_modules_answered_to_one(replay: ReplayTransport) -> None:
    driver = _driver(replay)
    with pytest.raises(InstrumentError, match=r"'bogus0=1' was refused: E10:00, unrecognised command"):
        driver.send("bogus0=1")
    assert replay.unrecorded == ["bogus0=1"]
