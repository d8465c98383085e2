"""The SCPI DAQ reader: exact command/reply pairs, then against the emulated scanning voltmeter."""

from __future__ import annotations

import time

import numpy as np
import pytest
from instrument_helpers import POLICY, served

from labsat.benchfile import DeviceSpec
from labsat.drivers.scpi_daq import ScpiDaq, build, channel_list
from labsat.drivers.testing import Pair, expected_protocol
from labsat.errors import InstrumentError
from labsat.simulators.emulators.memory import MemoryBackend as Memory
from labsat.simulators.emulators.scpi import DEFAULT_APERTURE_S, DaqEmulator

OK = '0,"No error"'


def test_channel_lists() -> None:
    assert channel_list([1, 2, 3, 4]) == "(@1:4)"
    assert channel_list([101, 102, 103]) == "(@101:103)"
    assert channel_list([1, 3, 5]) == "(@1,3,5)"
    assert channel_list([7]) == "(@7)"


def test_connect_configures_once_and_a_read_is_one_read_query() -> None:
    pairs: list[Pair] = [
        ("*IDN?", "ACME,DAQ8,1,1.0"),
        ("*CLS;:SYST:ERR?", OK),
        ("CONF:VOLT:DC (@101:104);:SYST:ERR?", OK),
        ("SENS:VOLT:DC:APER 0.002,(@101:104);:SYST:ERR?", OK),
        ("SENS:VOLT:DC:APER? (@101:104)", "0.002,0.002,0.002,0.002"),
        ("READ?", "1.0E-01,2.0E-01,-3.0E-01,4.0E-01"),
        ("READ?", "1.0E-01,2.0E-01,-3.0E-01,4.0E-01"),
    ]
    with expected_protocol(pairs) as link:
        daq = ScpiDaq("pd", link, [101, 102, 103, 104], 0.002).connect()
        assert daq.read().tolist() == [0.1, 0.2, -0.3, 0.4]
        assert daq.read().tolist() == [0.1, 0.2, -0.3, 0.4]
    assert daq.integration_time == 0.002
    assert daq.n_channels == 4


def test_with_fetch_a_reading_is_init_then_fetch() -> None:
    pairs: list[Pair] = [
        ("*IDN?", "ACME,DAQ8,1,1.0"),
        ("*CLS;:SYST:ERR?", OK),
        ("CONF:VOLT:DC (@1,3);:SYST:ERR?", OK),
        ("SENS:VOLT:DC:APER? (@1,3)", "0.001,0.02"),
        ("INIT;:SYST:ERR?", OK),
        ("FETC?", "0.5,0.25"),
    ]
    with expected_protocol(pairs) as link:
        daq = ScpiDaq("pd", link, [1, 3], fetch=True).connect()
        assert daq.read().tolist() == [0.5, 0.25]
    assert daq.integration_time == 0.02  # the longest aperture of the scan


def test_a_reading_with_the_wrong_count_is_garbled() -> None:
    pairs: list[Pair] = [
        ("*IDN?", "ACME,DAQ8,1,1.0"),
        ("*CLS;:SYST:ERR?", OK),
        ("CONF:VOLT:DC (@1,3);:SYST:ERR?", OK),
        ("SENS:VOLT:DC:APER? (@1,3)", "0.001,0.001"),
        ("READ?", "0.1"),
    ]
    with expected_protocol(pairs) as link:
        daq = ScpiDaq("pd", link, [1, 3]).connect()
        with pytest.raises(InstrumentError, match=r"garbled reply.*1 values where 2 were expected"):
            daq.read()


# -- against the emulated scanner ------------------------------------------------------------------


def _bench_daq(address: str, **options: object) -> ScpiDaq:
    spec = DeviceSpec(
        driver="scpi_daq",
        kind="detector",
        address=address,
        channels={"prefix": "pd", "count": 4, "first": 101},  # the instrument's own channel numbers
        options={"timeout_s": POLICY.timeout_s, "retries": POLICY.retries, "backoff_s": POLICY.backoff_s, **options},
    )
    return build("pd", spec, None)  # type: ignore[arg-type]  # a TCPIP address needs no bench context


def test_measure_would_reset_the_aperture_so_the_driver_never_sends_it() -> None:
    backend = Memory(4)
    backend.volts[:] = [0.1, 0.2, 0.3, 0.4]
    with served(DaqEmulator(backend, first=101)) as (emulator, address):
        daq = _bench_daq(address, integration_time_s=0.002)
        assert emulator.scan == [0, 1, 2, 3]
        for _ in range(3):
            np.testing.assert_allclose(daq.read(), [0.1, 0.2, 0.3, 0.4])
        assert emulator.aperture.tolist() == [0.002] * 4  # kept over every reading
        assert daq.integration_time == 0.002
        emulator.handle("MEAS:VOLT:DC? (@101:104)")  # what a MEAS? reading would have done
        assert emulator.aperture.tolist() == [DEFAULT_APERTURE_S] * 4
        daq.close()


def test_init_and_fetch_read_the_scan_as_configured() -> None:
    backend = Memory(4)
    backend.volts[:] = [0.1, 0.2, 0.3, 0.4]
    with served(DaqEmulator(backend, first=101)) as (emulator, address):
        daq = _bench_daq(address, integration_time_s=0.005, fetch=True)
        np.testing.assert_allclose(daq.read(), [0.1, 0.2, 0.3, 0.4])
        assert emulator.aperture.tolist() == [0.005] * 4
        daq.close()


def test_channels_the_instrument_lacks_are_refused_at_connect_with_code_and_channels() -> None:
    refusal = r"pd \(.+\) channels \(@101:104\): 'CONF:VOLT:DC \(@101:104\)' was refused: -222 Data out of range"
    with served(DaqEmulator(Memory(4), first=1)) as (_, address), pytest.raises(InstrumentError, match=refusal):
        _bench_daq(address)  # the instrument has channels 1..4, the bench says 101..104


def test_after_a_power_cycle_the_scan_is_configured_again_and_a_silent_daq_fails_in_bounded_time() -> None:
    backend = Memory(4)
    with served(DaqEmulator(backend, first=101)) as (emulator, address):
        daq = _bench_daq(address, integration_time_s=0.01)
        emulator.power_cycle()
        emulator.faults.cut = 1
        np.testing.assert_allclose(daq.read(), [0.0] * 4)
        assert emulator.aperture.tolist() == [0.01] * 4
        assert daq.link.reconnects == 1
        emulator.faults.silent = True
        started = time.monotonic()
        with pytest.raises(InstrumentError, match=r"'READ\?' failed after 3 attempts"):
            daq.read()
        assert time.monotonic() - started < 2 * POLICY.worst_case_s()
        daq.close()
