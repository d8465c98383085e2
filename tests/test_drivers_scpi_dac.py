"""The generic SCPI DAC driver: exact command/reply pairs, then against the emulated Keysight-style DAC."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from instrument_helpers import fast_link, served

from labsat.benchfile import ChannelLimits
from labsat.drivers.conditions import OutputsLost
from labsat.drivers.instrument import Scpi
from labsat.drivers.scpi_dac import ScpiDac
from labsat.drivers.testing import Pair, expected_protocol
from labsat.drivers.transport import Link
from labsat.errors import InstrumentError
from labsat.simulators.emulators.memory import MemoryBackend as Memory
from labsat.simulators.emulators.scpi import DacEmulator

OK = '0,"No error"'
Emulated = tuple[ScpiDac, DacEmulator, Memory]
LIMITS = ChannelLimits(voltage=(0.0, 2.2))
LIMIT_MESSAGE = (
    "*CLS;:SOUR1:VOLT:LIM:LOW 0.000000;:SOUR1:VOLT:LIM:HIGH 2.200000;:SOUR1:VOLT:LIM:STAT ON;"
    ":SOUR2:VOLT:LIM:LOW 0.000000;:SOUR2:VOLT:LIM:HIGH 2.200000;:SOUR2:VOLT:LIM:STAT ON;:SYST:ERR?"
)
READ_BACK = "SOUR1:VOLT?;:SOUR2:VOLT?;:OUTP1?;:OUTP2?"
CONNECT: list[Pair] = [
    ("*IDN?", "ACME,DAC2,1,1.0"),
    (LIMIT_MESSAGE, OK),
    (READ_BACK, "0.000000;1.000000;0;1"),  # channel 1's relay is open, channel 2 outputs 1 V
]


def _dac(link: Link, compound: bool = True, device_limits: bool = True) -> ScpiDac:
    dialect = Scpi(compound=compound)
    return ScpiDac("mods", link, [1, 2], [LIMITS] * 2, dialect=dialect, device_limits=device_limits).connect()


def test_connect_pushes_the_limits_and_switches_them_on_in_one_message_and_reads_back() -> None:
    with expected_protocol(CONNECT) as link:
        assert _dac(link)._last.tolist() == [0.0, 1.0]


def test_vector_write_is_one_message_closing_the_open_relay_after_the_level() -> None:
    pairs = [
        *CONNECT,
        ("SOUR2:VOLT 0.500000;:SOUR1:VOLT 2.000000;:OUTP1 ON;:SYST:ERR?", OK),
        ("SOUR1:VOLT 1.000000;:SYST:ERR?", OK),  # both relays are closed now: no OUTP
    ]
    with expected_protocol(pairs) as link:
        dac = _dac(link)
        dac.write_voltages(np.array([0, 1]), np.array([2.0, 0.5]))
        dac.write_voltages(np.array([0]), np.array([1.0]))


def test_the_safe_state_sets_zero_and_opens_every_relay() -> None:
    pairs = [*CONNECT, ("SOUR1:VOLT 0.000000;:SOUR2:VOLT 0.000000;:OUTP1 OFF;:OUTP2 OFF;:SYST:ERR?", OK)]
    with expected_protocol(pairs) as link:
        dac = _dac(link)
        dac.outputs_off()
        assert dac._last.tolist() == [0.0, 0.0]


def test_without_compound_messages_each_command_is_sent_and_checked_alone() -> None:
    pairs: list[Pair] = [
        ("*IDN?", "ACME,DAC2,1,1.0"),
        ("*CLS", None),
        ("SYST:ERR?", OK),
        ("SOUR1:VOLT?", "0.000000"),
        ("SOUR2:VOLT?", "1.000000"),
        ("OUTP1?", "1"),
        ("OUTP2?", "1"),
        ("SOUR2:VOLT 0.500000", None),
        ("SYST:ERR?", OK),
        ("SOUR1:VOLT 2.000000", None),
        ("SYST:ERR?", OK),
    ]
    with expected_protocol(pairs) as link:
        _dac(link, compound=False, device_limits=False).write_voltages(np.array([0, 1]), np.array([2.0, 0.5]))


def test_refused_vector_write_names_the_channel_and_reads_every_channel_back() -> None:
    pairs = [
        *CONNECT,
        ("SOUR2:VOLT 2.100000;:SOUR1:VOLT 2.000000;:OUTP1 ON;:SYST:ERR?", '-222,"Data out of range"'),
        ("SYST:ERR?", OK),
        (READ_BACK, "2.000000;1.000000;1;1"),  # channel 2 kept its 1 V
        (READ_BACK, "2.000000;1.000000;1;1"),
    ]
    with expected_protocol(pairs) as link:
        dac = _dac(link)
        with pytest.raises(InstrumentError, match=r"-222 Data out of range; not applied on channel 2$"):
            dac.write_voltages(np.array([0, 1]), np.array([2.0, 2.1]))
        assert dac._last.tolist() == [2.0, 1.0]


# -- against the emulated DAC ----------------------------------------------------------------------


def test_the_emulated_dac_keeps_soft_limits_inactive_until_their_state_is_on() -> None:
    emulator = DacEmulator(Memory(1), first=1)
    assert emulator.handle("SOUR1:VOLT:LIM:HIGH 1.0;:SOUR1:VOLT 1.5;:SYST:ERR?") == OK  # stored, not acting
    assert emulator.handle("SOUR1:VOLT:LIM:STAT ON;:SOUR1:VOLT 1.8;:SYST:ERR?") == '-222,"Data out of range"'
    assert emulator.handle("SOUR1:VOLT?;:SOUR1:VOLT:LIM:STAT?") == "1.500000;1"


@pytest.fixture
def emulated() -> Iterator[Emulated]:
    """A connected two-channel DAC driver, its emulated instrument and the backend the outputs reach."""
    backend = Memory(2)
    with served(DacEmulator(backend, first=1)) as (emulator, address):
        dac = ScpiDac("mods", fast_link("mods", address), [1, 2], [LIMITS] * 2, dialect=Scpi()).connect()
        yield dac, emulator, backend
        dac.close()


def test_the_instrument_itself_refuses_a_value_beyond_the_bench_limit_once_connected(emulated: Emulated) -> None:
    dac, emulator, backend = emulated
    assert emulator.limit_on.tolist() == [True, True]
    with pytest.raises(InstrumentError, match=r"'SOUR2:VOLT 3.000000' was refused: -222 Data out of range"):
        dac.send("SOUR2:VOLT 3.000000")  # past the guard, straight to the wire: the second line holds
    assert backend.volts.tolist() == [0.0, 0.0]


def test_a_channel_is_enabled_by_its_relay_and_the_safe_state_opens_it(emulated: Emulated) -> None:
    dac, emulator, backend = emulated
    assert emulator.output.tolist() == [False, False]
    dac.write_voltages(np.array([1]), np.array([1.5]))
    assert emulator.output.tolist() == [False, True]
    assert backend.volts.tolist() == [0.0, 1.5]
    np.testing.assert_array_equal(dac.read_voltages(), [0.0, 1.5])
    emulator.handle("OUTP2 OFF")  # opened at the front panel: the level stays, the output does not
    np.testing.assert_array_equal(dac.read_voltages(), [0.0, 0.0])
    dac.write_voltages(np.array([1]), np.array([1.0]))  # labsat learned it and closes it again
    assert backend.volts.tolist() == [0.0, 1.0]
    dac.outputs_off()
    assert emulator.output.tolist() == [False, False]
    assert backend.volts.tolist() == [0.0, 0.0]


def test_after_a_power_cycle_limits_and_relays_come_back_and_the_lost_outputs_are_reported(emulated: Emulated) -> None:
    dac, emulator, backend = emulated
    dac.write_voltages(np.array([0, 1]), np.array([1.0, 2.0]))
    emulator.power_cycle()
    assert backend.volts.tolist() == [0.0, 0.0]
    emulator.faults.cut = 1
    with pytest.raises(OutputsLost, match="not written"):  # planned from outputs that are gone: not repeated
        dac.write_voltages(np.array([0]), np.array([1.2]))
    assert emulator.limit_on.tolist() == [True, True]
    assert backend.volts.tolist() == [0.0, 0.0]  # the driver wrote no output back by itself
    lost = dac.take_lost_outputs()
    assert lost is not None and lost.positions.tolist() == [0, 1] and lost.set_points.tolist() == [1.0, 2.0]
    dac.write_voltages(np.array([0]), np.array([1.2]))  # the next write (the guard's decision) goes through
    assert emulator.output.tolist() == [True, False]
    assert backend.volts.tolist() == [1.2, 0.0]


def test_a_front_panel_limit_refusal_names_code_and_channel(emulated: Emulated) -> None:
    dac, emulator, _ = emulated
    emulator.handle("SOUR2:VOLT:LIM:HIGH 1.0")  # someone lowered it at the front panel
    with pytest.raises(InstrumentError, match=r"-222 Data out of range; not applied on channel 2$"):
        dac.write_voltages(np.array([0, 1]), np.array([0.5, 2.0]))
    np.testing.assert_array_equal(dac.read_voltages(), [0.5, 0.0])
