"""The Qontrol-style heater driver, pinned down by exact command/reply pairs."""

from __future__ import annotations

import numpy as np
import pytest

from labsat.benchfile import ChannelLimits
from labsat.drivers.qontrol import QontrolDriver
from labsat.drivers.testing import Pair, expected_protocol
from labsat.drivers.transport import Link
from labsat.errors import InstrumentError

LIMITS = ChannelLimits(voltage=(0.0, 4.0), resistance_ohm=1000.0, current_max_ma=4.5)


def _connect_pairs(readback: list[str]) -> list[Pair]:
    pairs: list[Pair] = [("id?", "Q8iv-0042")]
    for ch in range(len(readback)):
        pairs += [(f"vmax{ch}=4.000000", "OK"), (f"imax{ch}=4.500000", "OK")]
    return pairs + [(f"v{ch}?", value) for ch, value in enumerate(readback)]


def _driver(link: Link, n: int = 3, vector_write: bool = True) -> QontrolDriver:
    return QontrolDriver("heaters", link, list(range(n)), [LIMITS] * n, vector_write).connect()


def test_connect_names_the_device_pushes_vmax_imax_and_reads_the_outputs() -> None:
    with expected_protocol(_connect_pairs(["0.000000", "1.250000", "0.000000"])) as link:
        driver = _driver(link)
    assert driver.identity() == "Q8iv-0042"
    assert driver.n_channels == 3


def test_vector_write_is_one_vvec_line_over_the_changed_span() -> None:
    pairs = [*_connect_pairs(["0.000000", "1.250000", "0.000000"]), ("vvec0=0.500000,1.250000,2.000000", "OK")]
    with expected_protocol(pairs) as link:
        _driver(link).write_voltages(np.array([0, 2]), np.array([0.5, 2.0]))


def test_per_channel_writes_lower_falling_channels_before_raising_others() -> None:
    pairs = [
        *_connect_pairs(["3.000000", "0.000000", "1.000000"]),
        ("v0=1.000000", "OK"),  # falling first: total power never exceeds max(start, target)
        ("v2=1.000000", "OK"),  # unchanged
        ("v1=2.500000", "OK"),
    ]
    with expected_protocol(pairs) as link:
        _driver(link, vector_write=False).write_voltages(np.array([1, 0, 2]), np.array([2.5, 1.0, 1.0]))


def test_single_channel_write_uses_the_channel_command_and_reads_current() -> None:
    currents = [("i0?", "0.000000"), ("i1?", "1.500000"), ("i2?", "0.000000")]
    pairs = [*_connect_pairs(["0.000000", "0.000000", "0.000000"]), ("v1=1.500000", "OK"), *currents]
    with expected_protocol(pairs) as link:
        driver = _driver(link)
        driver.write_voltages(np.array([1]), np.array([1.5]))
        np.testing.assert_allclose(driver.read_currents(), [0.0, 1.5, 0.0])


def test_error_reply_names_code_and_meaning_and_the_outputs_are_read_back() -> None:
    pairs = [
        *_connect_pairs(["0.000000", "0.000000", "0.000000"]),
        ("v2=3.000000", "E01:02"),
        ("v0?", "0.000000"),
        ("v1?", "0.000000"),
        ("v2?", "2.000000"),  # the device clamped to its vmax: the driver must not believe 3 V
    ]
    with expected_protocol(pairs) as link:
        driver = _driver(link)
        refused = r"heaters \(scripted\): 'v2=3.000000' was refused: error 01 on channel 2, over-voltage"
        with pytest.raises(InstrumentError, match=refused):
            driver.write_voltages(np.array([2]), np.array([3.0]))
        assert driver._last.tolist() == [0.0, 0.0, 2.0]


def test_a_bipolar_bench_range_is_refused_at_connect() -> None:
    bipolar = ChannelLimits(voltage=(-1.0, 4.0))
    with (
        expected_protocol([("id?", "Q8iv-0042")]) as link,
        pytest.raises(InstrumentError, match="allows -1 V but a Qontrol output is unipolar"),
    ):
        QontrolDriver("heaters", link, [0], [bipolar]).connect()


def test_value_outside_the_instrument_range_never_reaches_the_wire() -> None:
    with expected_protocol(_connect_pairs(["0.000000"])) as link:
        driver = _driver(link, n=1)
        with pytest.raises(InstrumentError, match=r"voltage = 13\.0 refused: 13 is outside the instrument's range"):
            driver.set("voltage", 13.0, ch=0)


def test_unknown_reply_to_a_setting_is_garbled() -> None:
    with expected_protocol([*_connect_pairs(["0.000000"]), ("v0=1.000000", "KO")]) as link:
        driver = _driver(link, n=1)
        with pytest.raises(InstrumentError, match=r"failed after 1 attempts; last: v0=1\.000000: garbled reply"):
            driver.set("voltage", 1.0, ch=0)
