"""The SCPI DAQ reader, pinned down by exact command/reply pairs."""

from __future__ import annotations

import pytest

from labsat.drivers.scpi_daq import ScpiDaq, channel_list
from labsat.drivers.testing import expected_protocol
from labsat.errors import InstrumentError


def test_channel_lists() -> None:
    assert channel_list([1, 2, 3, 4]) == "(@1:4)"
    assert channel_list([1, 3, 5]) == "(@1,3,5)"
    assert channel_list([7]) == "(@7)"


def test_connect_sets_the_aperture_and_a_read_is_one_query() -> None:
    pairs = [
        ("*IDN?", "ACME,DAQ8,1,1.0"),
        ("SENS:VOLT:APER 0.002;:SYST:ERR?", '0,"No error"'),
        ("SENS:VOLT:APER?", "0.002"),
        ("MEAS:VOLT? (@1:4)", "1.0E-01,2.0E-01,-3.0E-01,4.0E-01"),
    ]
    with expected_protocol(pairs) as link:
        daq = ScpiDaq("pd", link, [1, 2, 3, 4], 0.002).connect()
        assert daq.read().tolist() == [0.1, 0.2, -0.3, 0.4]
    assert daq.integration_time == 0.002
    assert daq.n_channels == 4


def test_a_reading_with_the_wrong_count_is_garbled() -> None:
    pairs = [("*IDN?", "ACME,DAQ8,1,1.0"), ("SENS:VOLT:APER?", "0.001"), ("MEAS:VOLT? (@1,3)", "0.1")]
    with expected_protocol(pairs) as link:
        daq = ScpiDaq("pd", link, [1, 3]).connect()
        with pytest.raises(InstrumentError, match=r"garbled reply.*1 values where 2 were expected"):
            daq.read()
