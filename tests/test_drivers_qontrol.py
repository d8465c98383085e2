"""The Qontrol driver, pinned down by exact command/reply pairs in the vendor's protocol."""

from __future__ import annotations

from collections.abc import Collection
from decimal import ROUND_DOWN, Decimal

import numpy as np
import pytest

from labsat.benchfile import ChannelLimits
from labsat.drivers.conditions import OutputsLost
from labsat.drivers.qontrol import QontrolDriver, wire_number
from labsat.drivers.testing import Pair, expected_protocol
from labsat.drivers.transport import Link, RetryPolicy, transport_opener
from labsat.errors import InstrumentError
from labsat.simulators.emulators import protocol_labsatemu
from labsat.simulators.emulators.memory import MemoryBackend
from labsat.simulators.emulators.qontrol import QontrolEmulator

LIMITS = ChannelLimits(voltage=(0.0, 4.0), resistance_ohm=1000.0, current_max_ma=4.5)


def _lines(values: list[float], unit: str = "V") -> str:
    return "\n".join(f"{v:+.4f} {unit}" for v in values)


def _connect_pairs(
    n: int = 8, modules: int = 1, readback: list[float] | None = None, limits_set: Collection[int] = ()
) -> list[Pair]:
    """Connecting to ``modules`` Q8iv whose first ``n`` channels are the bench's; ``limits_set``:
    channels already at the bench's vmax/imax (no write)."""
    total = 8 * modules
    vmax = [4.0 if ch in limits_set else 12.0 for ch in range(total)]
    imax = [4.5 if ch in limits_set else 24.0 for ch in range(total)]
    pairs: list[Pair] = [
        ("idall?", "\n".join(f"Q8iv-{k:04d}" for k in range(1, modules + 1))),
        ("nchanall?", "\n".join(["8"] * modules)),
        ("vfullall?", _lines([12.0] * modules)),
        ("ifullall?", _lines([24.0] * modules, "mA")),
        ("vmaxall?", _lines(vmax)),
        ("imaxall?", _lines(imax, "mA")),
    ]
    for ch in range(n):
        if ch not in limits_set:
            pairs += [(f"vmax{ch}=4", "OK"), (f"imax{ch}=4.5", "OK")]
    return [*pairs, ("vall?", _lines(readback or [0.0] * total))]


def _driver(link: Link, n: int = 8, vector_write: bool = True) -> QontrolDriver:
    return QontrolDriver("heaters", link, list(range(n)), [LIMITS] * n, vector_write).connect()


def test_connect_reads_the_chain_and_its_full_scale_and_pushes_only_the_limits_that_differ() -> None:
    with expected_protocol(_connect_pairs(n=3, modules=2, limits_set={1})) as link:
        driver = _driver(link, n=3)
    assert driver.identity() == "Q8iv-0001, Q8iv-0002"
    assert driver.module_channels == (8, 8)
    assert driver.full_scale_v.tolist() == [12.0] * 3
    assert driver.full_scale_ma.tolist() == [24.0] * 3


def test_a_whole_module_is_one_vvec_line_and_unchanged_channels_carry_their_set_points() -> None:
    first = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    pairs = [
        *_connect_pairs(),
        ("vvec0=0.5,1,1.5,2,2.5,3,3.5,4", "OK"),
        ("vvec0=0.5,1,1.25,2,2.5,3,3.5,3", "OK"),  # channels 2 and 7 changed; the others' set points
        ("v4=2", "OK"),  # one changed channel: its own line
    ]
    with expected_protocol(pairs) as link:
        driver = _driver(link)
        driver.write_voltages(np.arange(8), np.array(first))
        driver.write_voltages(np.array([2, 7]), np.array([1.25, 3.0]))
        driver.write_voltages(np.array([4]), np.array([2.0]))
    assert driver.commanded.tolist() == [0.5, 1.0, 1.25, 2.0, 2.0, 3.0, 3.5, 3.0]


def test_a_vector_write_never_resends_a_read_back() -> None:
    measured = [0.2077, 0.2055, 0.2055, 0.2051, 0.2075, 0.2060, 0.2062, 0.2076]  # the recorded Q8iv at rest
    pairs = [*_connect_pairs(readback=measured), ("v2=1", "OK"), ("v5=2", "OK")]
    with expected_protocol(pairs) as link:
        driver = _driver(link)
        driver.write_voltages(np.array([5, 2]), np.array([2.0, 1.0]))
    assert np.isnan(driver.commanded[[0, 1, 3, 4, 6, 7]]).all()


def test_channels_of_a_module_that_are_not_the_benchs_are_never_written() -> None:
    pairs = [*_connect_pairs(n=4), ("v0=1", "OK"), ("v1=1", "OK"), ("v2=1", "OK"), ("v3=1", "OK")]
    with expected_protocol(pairs) as link:
        _driver(link, n=4).write_voltages(np.arange(4), np.ones(4))


def test_multi_module_vector_write_then_an_over_voltage_write_is_refused_naming_code_and_channel() -> None:
    volts = np.linspace(0.0, 3.0, 16)
    first = ",".join(wire_number(v) for v in volts[:8])
    second = ",".join(wire_number(v) for v in volts[8:])
    pairs = [
        *_connect_pairs(n=16, modules=2),
        (f"vvec0={first}", "OK"),  # one line per module, as the vendor library sends it
        (f"vvec8={second}", "OK"),
        ("v11=3.5", "E01:11"),  # the module's vmax was lowered behind labsat's back
        ("vall?", _lines([*volts[:11], 1.0, *volts[12:]])),
    ]
    with expected_protocol(pairs) as link:
        driver = _driver(link, n=16)
        driver.write_voltages(np.arange(16), volts)
        refused = r"heaters \(scripted\): 'v11=3\.5' was refused: E01:11, over-voltage on channel 11"
        with pytest.raises(InstrumentError, match=refused):
            driver.write_voltages(np.array([11]), np.array([3.5]))
    assert np.isnan(driver.commanded[11])
    assert driver._last[11] == pytest.approx(1.0)  # what the channel holds: the device clamped it


def test_per_channel_writes_lower_falling_channels_before_raising_others() -> None:
    pairs = [
        *_connect_pairs(n=3, readback=[3.0, 0.0, 1.0, 0, 0, 0, 0, 0]),
        ("v0=1", "OK"),  # falling first: total power never exceeds max(start, target)
        ("v2=1", "OK"),  # unchanged
        ("v1=2.5", "OK"),
    ]
    with expected_protocol(pairs) as link:
        _driver(link, n=3, vector_write=False).write_voltages(np.array([1, 0, 2]), np.array([2.5, 1.0, 1.0]))


def test_a_measurement_near_the_set_point_reads_as_the_set_point_and_a_hair_below_zero_as_zero() -> None:
    pairs = [
        *_connect_pairs(n=2),
        ("v0=1.5", "OK"),
        ("vall?", _lines([1.4998, -0.0003, 0, 0, 0, 0, 0, 0])),
        ("iall?", _lines([1.5002, -0.0036, 0, 0, 0, 0, 0, 0], "mA")),
    ]
    with expected_protocol(pairs) as link:
        driver = _driver(link, n=2)
        driver.write_voltages(np.array([0]), np.array([1.5]))
        assert driver.read_voltages().tolist() == [1.5, 0.0]  # not -0.0003: that would fail the guard's range
        assert driver.measured.tolist() == [1.4998, -0.0003]
        assert driver.read_currents().tolist() == [1.5002, -0.0036]


def test_stale_and_out_of_step_lines_are_discarded_never_taken_for_a_reply() -> None:
    pairs = [
        *_connect_pairs(n=1),
        ("v0=1", "OK\n+0.9000 V"),  # a stray line after the acknowledgement...
        ("vall?", "OK\n" + _lines([1.0001, 0, 0, 0, 0, 0, 0, 0])),  # ...and an OK where voltages are due
    ]
    with expected_protocol(pairs) as link:
        driver = _driver(link, n=1)
        driver.write_voltages(np.array([0]), np.array([1.0]))
        assert driver.read_voltages().tolist() == [1.0]
        assert driver.measured.tolist() == [1.0001]  # vall?'s own reply, not the stale +0.9000 V


def test_an_overflow_is_refused_with_its_meaning_and_its_trailing_lines_are_drained() -> None:
    line = "vvec0=" + ",".join(["1"] * 8)
    pairs = [*_connect_pairs(n=8), (line, "E14:00\nE15:00"), ("vall?", _lines([1.0] * 8))]
    with expected_protocol(pairs) as link:
        driver = _driver(link, n=8)
        with pytest.raises(InstrumentError, match=r"was refused: E14:00, buffer overflow: instruction buffer overflow"):
            driver.write_voltages(np.arange(8), np.ones(8))


def test_a_power_up_notice_resets_the_link_restores_the_limits_and_reports_the_set_points_lost() -> None:
    pairs = [
        *_connect_pairs(n=2),
        ("v1=2", "OK\nE90:00"),  # the modules restarted right after acknowledging
        # the next command finds the E90 first: the link is reopened and the limits pushed again...
        *_connect_pairs(n=2),
        ("vall?", _lines([0.0] * 8)),  # ...and the command that met the notice repeated: no output written
    ]
    with expected_protocol(pairs, retries=1) as link:
        driver = _driver(link, n=2)
        driver.write_voltages(np.array([1]), np.array([2.0]))
        assert driver.read_voltages().tolist() == [0.0, 0.0]
    assert link.reconnects == 1
    lost = driver.take_lost_outputs()
    assert lost is not None and lost.positions.tolist() == [1] and lost.set_points.tolist() == [2.0]
    assert driver.take_lost_outputs() is None  # reported once
    assert np.isnan(driver.commanded[1])  # no set point holds there: none is re-sent from the cache


def test_a_write_that_meets_a_power_up_notice_is_not_repeated() -> None:
    pairs = [
        *_connect_pairs(n=2),
        ("v0=1", "OK\nE90:00"),
        *_connect_pairs(n=2),  # the reconnect; then v1=1.5 is not sent: it was planned from lost outputs
        ("vall?", _lines([0.0] * 8)),  # the read-back after the failed write
    ]
    with expected_protocol(pairs, retries=1) as link:
        driver = _driver(link, n=2)
        driver.write_voltages(np.array([0]), np.array([1.0]))
        with pytest.raises(OutputsLost, match=r"reset by a power cycle \(E90\); not written"):
            driver.write_voltages(np.array([1]), np.array([1.5]))
    lost = driver.take_lost_outputs()
    assert lost is not None and lost.positions.tolist() == [0] and lost.set_points.tolist() == [1.0]


def test_a_reconnect_does_not_rewrite_outputs_that_held() -> None:
    pairs = [
        *_connect_pairs(n=2),
        ("v0=1", "OK"),
        ("vall?", None),  # the link drops: no reply
        ("idall?", "Q8iv-0001"),
        ("nchanall?", "8"),
        ("vfullall?", "+12.0000 V"),
        ("ifullall?", "+24.0000 mA"),
        ("vmaxall?", _lines([4.0, 4.0, 12, 12, 12, 12, 12, 12])),  # the limits held: no write
        ("imaxall?", _lines([4.5, 4.5, 24, 24, 24, 24, 24, 24], "mA")),
        ("vall?", _lines([1.0002, 0, 0, 0, 0, 0, 0, 0])),  # so did the output: no write, no ramp
        ("vall?", _lines([0.9999, 0, 0, 0, 0, 0, 0, 0])),
    ]
    with expected_protocol(pairs, retries=1) as link:
        driver = _driver(link, n=2)
        driver.write_voltages(np.array([0]), np.array([1.0]))
        assert driver.read_voltages().tolist() == [1.0, 0.0]


def test_bench_limits_the_device_cannot_hold_are_refused_at_connect() -> None:
    with pytest.raises(InstrumentError, match="allows -1 V but a Qontrol output is unipolar"):
        QontrolDriver("heaters", Link("h", "x", lambda: None, None), [0], [ChannelLimits(voltage=(-1.0, 4.0))])  # type: ignore[arg-type, return-value]
    heavy = ChannelLimits(voltage=(0.0, 4.0), resistance_ohm=100.0, current_max_ma=30.0)
    with (
        expected_protocol(_connect_pairs()[:4]) as link,
        pytest.raises(InstrumentError, match=r"channel 0 allows up to 30 mA but its full scale \(ifull\?\) is 24 mA"),
    ):
        QontrolDriver("heaters", link, [0], [heavy]).connect()
    with (
        expected_protocol(_connect_pairs()[:4]) as link,
        pytest.raises(InstrumentError, match=r"channel 8 does not exist: the chain has 8 channels \(8\)"),
    ):
        QontrolDriver("heaters", link, [7, 8], [LIMITS] * 2).connect()


def test_a_value_outside_the_bench_range_never_reaches_the_wire() -> None:
    with expected_protocol(_connect_pairs(n=1)) as link:
        driver = _driver(link, n=1)
        with pytest.raises(InstrumentError, match=r"channel 0 = 4\.5 V refused: outside the bench range \[0, 4\] V"):
            driver.write_voltages(np.array([0]), np.array([4.5]))


def test_a_garbled_reply_is_a_link_error() -> None:
    reconnect = _connect_pairs(n=1, limits_set={0})  # the read-back after the failed write reopens the link
    pairs = [*_connect_pairs(n=1), ("v0=1", "#\ufffd?~%0x"), *reconnect, ("vall?", _lines([0.0] * 8))]
    with expected_protocol(pairs) as link:
        driver = _driver(link, n=1)
        with pytest.raises(InstrumentError, match=r"'v0=1' failed after 1 attempts; last: .*garbled reply"):
            driver.write_voltages(np.array([0]), np.array([1.0]))


@pytest.mark.parametrize(("value", "text"), [(0.3, "0.3"), (10.0, "10"), (3.33335, "3.3333"), (0.0, "0"), (1e-5, "0")])
def test_numbers_go_on_the_wire_at_four_decimals_rounded_towards_zero(value: float, text: str) -> None:
    assert wire_number(value) == text


def test_the_wire_form_is_exact_decimal_rounding_towards_zero_of_any_number() -> None:
    rng = np.random.default_rng(14)
    values = [
        *rng.uniform(-12.0, 12.0, 2000),
        *(rng.uniform(-1.0, 1.0, 500) * 10.0 ** rng.integers(-9, 18, 500)),
        *np.round(rng.uniform(0.0, 12.0, 500), 4),  # numbers already at the resolution
        *(-0.0, 1e-4, -1e-4, 0.99999999, 12.0, 5e-5),
    ]
    for value in values:
        exact = Decimal(repr(float(value))).quantize(Decimal("0.0001"), rounding=ROUND_DOWN).normalize()
        assert wire_number(value) == f"{exact:f}", value
        assert abs(float(wire_number(value))) <= abs(value)  # never past a limit


def test_a_line_the_modules_would_overflow_is_sent_channel_by_channel() -> None:
    wide = ChannelLimits(voltage=(0.0, 12.0))
    pairs = [*_connect_pairs()[:6], ("vall?", _lines([0.0] * 8))]  # vmax/imax already at full scale
    volts = np.full(8, 10.1234)  # "vvec0=" + 8 x "10.1234": 69 characters, over max_line
    pairs += [(f"v{ch}=10.1234", "OK") for ch in range(8)]
    with expected_protocol(pairs) as link:
        driver = QontrolDriver("heaters", link, list(range(8)), [wide] * 8).connect()
        driver.write_voltages(np.arange(8), volts)


@pytest.mark.parametrize(
    ("faults", "reconnects"),
    [
        (["E15:01", "E15:01"], 0),  # a framing error, twice: sent again on the same port
        (["E16:00", "E16:00"], 0),  # a line that arrived too slowly
        (["E15:01"] * 3, 1),  # still garbled after the resends: the link is reopened
    ],
)
def test_a_line_garbled_on_its_way_in_is_sent_again(faults: list[str], reconnects: int) -> None:
    pairs = [*_connect_pairs(n=1), *[("v0=1", fault) for fault in faults]]
    pairs += [*(_connect_pairs(n=1, limits_set={0}) if reconnects else []), ("v0=1", "OK")]
    with expected_protocol(pairs, retries=1) as link:
        driver = _driver(link, n=1)
        driver.write_voltages(np.array([0]), np.array([1.0]))
    assert driver.commanded.tolist() == [1.0]
    assert link.reconnects == reconnects


# -- refusals from the emulated chain: instrument, channel, code and meaning -------------------------


def test_refusals_from_the_emulated_chain_name_the_device_the_bench_channel_the_code_and_its_meaning() -> None:
    emulator = QontrolEmulator(MemoryBackend(16), [1000.0] * 16)
    url = protocol_labsatemu.publish("qontrol-refusals", emulator)
    try:
        policy = RetryPolicy(timeout_s=0.5, retries=0)
        link = Link("heaters", url, transport_opener(url, {}, policy.timeout_s), policy)
        names = [f"h{k}" for k in range(16)]
        driver = QontrolDriver("heaters", link, list(range(16)), [LIMITS] * 16, channel_names=names).connect()
        emulator.handle("vmax11=1.0")  # lowered at the module, behind labsat's back
        over = (
            r"^heaters \(labsatemu://qontrol-refusals\): 'v11=2' was refused: "
            r"E01:11, over-voltage on channel 11 \(h11\)$"
        )
        with pytest.raises(InstrumentError, match=over):
            driver.write_voltages(np.array([11]), np.array([2.0]))
        long_line = "vvec0=" + ",".join(["1.2345"] * 10)  # 65 characters: past the instruction buffer
        too_long = (
            r"'vvec0=1\.2345,.+' was refused: E14:01, buffer overflow: single instruction overflow "
            r"\(the line is too long\); the line was for channels 0\.\.9$"
        )
        with pytest.raises(InstrumentError, match=too_long):
            driver.send(long_line)
        with pytest.raises(
            InstrumentError,
            match=r"'x3=1' was refused: E10:00, unrecognised command; the line was for channel 3 \(h3\)$",
        ):
            driver.send("x3=1")
        driver.close()
    finally:
        protocol_labsatemu.withdraw("qontrol-refusals")
