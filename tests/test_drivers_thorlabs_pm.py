"""The Thorlabs PM100 driver, pinned down by exact command/reply pairs."""

from __future__ import annotations

from labsat.drivers.testing import expected_protocol
from labsat.drivers.thorlabs_pm import ThorlabsPM

OK = '0,"No error"'


def test_connect_sets_wavelength_range_and_averaging_then_reads_watts() -> None:
    pairs = [
        ("*IDN?", "Thorlabs,PM100D,P0012345,2.6.0"),
        ("SENS:CORR:WAV 1550;:SYST:ERR?", OK),
        ("SENS:POW:RANG:AUTO 0;:SYST:ERR?", OK),
        ("SENS:POW:RANG 0.001;:SYST:ERR?", OK),
        ("SENS:AVER:COUN 100;:SYST:ERR?", OK),
        ("SENS:AVER:COUN?", "100"),
        ("MEAS:POW?", "1.234E-04"),
    ]
    with expected_protocol(pairs) as link:
        meter = ThorlabsPM("pm", link, wavelength_nm=1550, range_w=1e-3, average_count=100).connect()
        assert meter.read().tolist() == [1.234e-4]
    assert meter.integration_time == 0.3
    assert meter.n_channels == 1


def test_without_a_range_the_meter_auto_ranges() -> None:
    pairs = [
        ("*IDN?", "Thorlabs,PM100D,P0012345,2.6.0"),
        ("SENS:POW:RANG:AUTO 1;:SYST:ERR?", OK),
        ("SENS:AVER:COUN?", "1"),
    ]
    with expected_protocol(pairs) as link:
        ThorlabsPM("pm", link).connect()
