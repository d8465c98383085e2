"""The Thorlabs PM100 driver: exact command/reply pairs, then against the emulated PM100D."""

from __future__ import annotations

import time

import pytest
from instrument_helpers import POLICY, fast_link, served

from labsat.benchfile import DeviceSpec
from labsat.drivers.conditions import OverRange
from labsat.drivers.testing import Pair, expected_protocol
from labsat.drivers.thorlabs_pm import ThorlabsPM, build, reading_time_s
from labsat.drivers.transport import RetryPolicy
from labsat.errors import InstrumentError
from labsat.simulators.emulators.powermeter import PowerMeterEmulator

OK = '0,"No error"'
IDN = "Thorlabs,PM100D,P0012345,2.6.0"


def test_connect_forces_watts_reads_the_wavelength_back_and_sets_range_and_averaging() -> None:
    pairs: list[Pair] = [
        ("*IDN?", IDN),
        ("*CLS;:SYST:ERR?", OK),
        ("SENS:POW:UNIT W;:SYST:ERR?", OK),
        ("SENS:POW:UNIT?", "W"),
        ("SENS:CORR:WAV 1550;:SYST:ERR?", OK),
        ("SENS:CORR:WAV?", "1550"),
        ("SENS:POW:RANG:AUTO 0;:SYST:ERR?", OK),
        ("SENS:POW:RANG 0.001;:SYST:ERR?", OK),
        ("SENS:AVER:COUN 100;:SYST:ERR?", OK),
        ("SENS:AVER:COUN?", "100"),
        ("MEAS:POW?", "1.234E-04"),
    ]
    with expected_protocol(pairs) as link:
        link.policy = RetryPolicy(timeout_s=1.0, retries=0)
        meter = ThorlabsPM("pm", link, wavelength_nm=1550, range_w=1e-3, average_count=100).connect()
        assert meter.read().tolist() == [1.234e-4]
    assert meter.integration_time == pytest.approx(0.3)
    assert meter.wavelength_nm == 1550.0
    assert meter.n_channels == 1


def test_without_a_wavelength_or_range_the_meter_auto_ranges_and_reports_its_wavelength() -> None:
    pairs: list[Pair] = [
        ("*IDN?", IDN),
        ("*CLS;:SYST:ERR?", OK),
        ("SENS:POW:UNIT W;:SYST:ERR?", OK),
        ("SENS:POW:UNIT?", "W"),
        ("SENS:CORR:WAV?", "1310"),
        ("SENS:POW:RANG:AUTO 1;:SYST:ERR?", OK),
        ("SENS:AVER:COUN 1;:SYST:ERR?", OK),
        ("SENS:AVER:COUN?", "1"),
    ]
    with expected_protocol(pairs) as link:
        assert ThorlabsPM("pm", link).connect().wavelength_nm == 1310.0


# -- against the emulated PM100D -------------------------------------------------------------------


def _bench_meter(address: str, **options: float) -> ThorlabsPM:
    spec = DeviceSpec(
        driver="thorlabs_pm",
        kind="detector",
        address=address,
        channels={"count": 1},
        options={"timeout_s": POLICY.timeout_s, "retries": POLICY.retries, "backoff_s": POLICY.backoff_s, **options},
    )
    return build("pm", spec, None)  # type: ignore[arg-type]  # a TCPIP address needs no bench context


def test_a_meter_left_in_dbm_is_switched_to_watts_at_connect() -> None:
    with served(PowerMeterEmulator(lambda: 2.5e-4, unit="DBM")) as (emulator, address):
        assert float(emulator.handle("MEAS:POW?") or "nan") == pytest.approx(-6.0206, abs=1e-3)  # dBm
        meter = _bench_meter(address, wavelength_nm=1550)
        assert emulator.unit == "W"
        assert meter.read().tolist() == [2.5e-4]
        meter.close()


def test_a_wavelength_the_firmware_coerces_refuses_the_connect_and_names_both() -> None:
    with served(PowerMeterEmulator(lambda: 1e-4, sensor_nm=(400.0, 1100.0))) as (emulator, address):
        with pytest.raises(InstrumentError, match=r"pm \(.+\): wavelength 1550 nm was set but the meter uses 1100 nm"):
            _bench_meter(address, wavelength_nm=1550)
        assert emulator.wavelength_nm == 1100.0  # coerced silently: no error in the queue
        meter = _bench_meter(address, wavelength_nm=1064)
        assert meter.wavelength_nm == 1064.0
        meter.close()


def test_the_timeout_grows_with_the_averaging() -> None:
    count = 100  # 0.3 s a reading, twice the 0.15 s the bench entry asks for
    with served(PowerMeterEmulator(lambda: 1e-4)) as (_, address):
        meter = _bench_meter(address, average_count=count)
        assert meter.link.policy.timeout_s == pytest.approx(POLICY.timeout_s + reading_time_s(count))
        started = time.monotonic()
        assert meter.read().tolist() == [1e-4]
        assert 0.3 <= time.monotonic() - started < meter.link.policy.timeout_s
        assert meter.link.reconnects == 0  # no reading timed out
        meter.close()
        with pytest.raises(InstrumentError, match=r"average_count 100 takes about 0.45 s, longer than .+ 0.15"):
            ThorlabsPM("pm", fast_link("pm", address), average_count=count).connect()


def test_a_refused_wavelength_names_the_meter_its_bench_channel_the_code_and_its_meaning() -> None:
    with served(PowerMeterEmulator(lambda: 2e-4, coerce=False)) as (_, address):
        refusal = (
            r"^pm \(TCPIP::127.0.0.1::\d+::SOCKET\) channel 0 \(ch0\): 'SENS:CORR:WAV 5000' was refused: "
            r"-222 Data out of range$"
        )
        with pytest.raises(InstrumentError, match=refusal):
            _bench_meter(address, wavelength_nm=5000)  # outside the sensor's range, and this firmware says so


def test_an_over_range_reading_is_a_named_condition_not_a_number() -> None:
    power = [1e-3]
    with served(PowerMeterEmulator(lambda: power[0], sensor_max_w=0.5)) as (emulator, address):
        meter = _bench_meter(address, wavelength_nm=1550, range_w=1e-2)
        power[0] = 0.05  # above the 10 mW range
        assert emulator.handle("MEAS:POW?") == "9.9E+37"
        with pytest.raises(OverRange, match=r"pm \(TCPIP::127.0.0.1::\d+::SOCKET\) channel 0 \(ch0\): over range"):
            meter.read()
        meter.close()


def test_a_refused_setting_is_reported_with_its_code_and_the_meter_reconnects_after_a_power_cycle() -> None:
    with served(PowerMeterEmulator(lambda: 2e-4)) as (emulator, address):
        emulator.faults.refuse = 1  # the first setting: *CLS
        with pytest.raises(InstrumentError, match=r"channel 0 \(ch0\): '\*CLS' was refused: -300 Device-specific"):
            _bench_meter(address)
        meter = _bench_meter(address, wavelength_nm=1310, average_count=5)
        emulator.power_cycle()
        emulator.faults.cut = 1
        assert meter.read().tolist() == [2e-4]
        assert (emulator.wavelength_nm, emulator.average_count, emulator.unit) == (1310.0, 5, "W")
        assert meter.link.reconnects == 1
        emulator.faults.silent = True
        started = time.monotonic()
        with pytest.raises(InstrumentError, match=r"'MEAS:POW\?' failed after 3 attempts"):
            meter.read()
        assert time.monotonic() - started < 2 * meter.link.policy.worst_case_s()
        meter.close()
