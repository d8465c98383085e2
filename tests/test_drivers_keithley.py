"""The Keithley 24xx SMU driver: exact command/reply pairs, then against the emulated 2400 (and 2450)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from instrument_helpers import POLICY, served

from labsat.bench import Bench, open_bench
from labsat.benchfile import ChannelLimits, DeviceSpec
from labsat.drivers.conditions import InCompliance, OutputOff, OutputsLost
from labsat.drivers.instrument import Scpi
from labsat.drivers.keithley import Keithley24xx, build, ovp_setting
from labsat.drivers.testing import Pair, expected_protocol
from labsat.drivers.transport import Link, LinkError
from labsat.errors import Halted, InstrumentError
from labsat.simulators.emulators.smu import SmuEmulator, ovp_level

IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4000001,C32"
OK = '0,"No error"'
LIMITS = ChannelLimits(voltage=(-5.0, 5.0), resistance_ohm=1000.0, current_max_ma=2.0)
CONNECT: list[Pair] = [
    ("*IDN?", IDN),
    ("*CLS;:SYST:ERR?", OK),
    (":SOUR:FUNC VOLT;:SYST:ERR?", OK),
    (":SOUR:VOLT:RANG 5;:SYST:ERR?", OK),
    (":SOUR:VOLT:PROT 20;:SYST:ERR?", OK),  # the 2400's lowest OVP level at or above 5 V
    (":SOUR:VOLT:PROT?", "20"),
    (":SENS:CURR:PROT 0.002;:SYST:ERR?", OK),
    (":SOUR:CLE:AUTO OFF;:SYST:ERR?", OK),  # or every reading would switch the output off
    (":FORM:ELEM VOLT,CURR,STAT;:SYST:ERR?", OK),
    (":OUTP?", "0"),  # output off: the present output is 0 V, whatever the level
]
Guarded = tuple[Bench, SmuEmulator]
V_SOURCE = "+1.638400E+04"  # status word: bit 14, sourcing voltage, no compliance, no OVP


def _smu(link: Link, limits: ChannelLimits = LIMITS, compliance_a: float = 0.002) -> Keithley24xx:
    return Keithley24xx("smu", link, [1], [limits], compliance_a).connect()


# -- the bytes on the wire -----------------------------------------------------------------------------


def test_connect_clears_the_queue_then_sets_function_range_ovp_compliance_and_format() -> None:
    with expected_protocol(CONNECT) as link:
        smu = _smu(link)
    assert smu.identity() == IDN
    assert smu.n_channels == 1
    assert smu.ovp_v == 20.0


def test_write_sets_the_level_switches_the_output_on_once_and_checks_the_reading() -> None:
    pairs = [
        *CONNECT,
        (":SOUR:VOLT:LEV 1.500000;:SYST:ERR?", OK),
        (":OUTP?", "0"),
        (":OUTP 1;:SYST:ERR?", OK),
        (":READ?", f"+1.500000E+00,+1.500000E-03,{V_SOURCE}"),
        (":SOUR:VOLT:LEV 2.000000;:SYST:ERR?", OK),
        (":OUTP?", "1"),
        (":READ?", f"+2.000000E+00,+2.000000E-03,{V_SOURCE}"),
        (":OUTP?", "1"),
        (":READ?", f"+2.000000E+00,+2.000000E-03,{V_SOURCE}"),
        (":SOUR:VOLT:LEV?", "2.000000"),
        (":OUTP?", "1"),
        (":READ?", f"+2.000000E+00,+2.000000E-03,{V_SOURCE}"),
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
            match=r"smu \(scripted\) channel 1: ':SOUR:VOLT:LEV 4.000000' was refused: -222 Data out of range; "
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


@pytest.mark.parametrize(("volts", "level"), [(5.0, 20.0), (20.0, 20.0), (21.0, 40.0), (150.0, 160.0), (200.0, 210.0)])
def test_the_ovp_sent_is_the_smallest_level_the_2400_keeps_at_or_above_the_bench_limit(
    volts: float, level: float
) -> None:
    assert ovp_setting("2400", volts) == level
    levels, none = (20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 160.0), 210.0
    assert ovp_level(levels, none, ovp_setting("2400", volts)) >= volts  # what the instrument makes of it


# -- against the emulated 2400 ---------------------------------------------------------------------


def _bench_smu(address: str, limits: ChannelLimits = LIMITS) -> Keithley24xx:
    spec = DeviceSpec(
        driver="keithley24xx",
        kind="voltage_source",
        address=address,
        channels={"count": 1, "first": 1},
        limits=limits.model_dump(),
        options={"timeout_s": POLICY.timeout_s, "retries": POLICY.retries, "backoff_s": POLICY.backoff_s},
    )
    return build("smu", spec, None)  # type: ignore[arg-type]  # a TCPIP address needs no bench context


def test_a_stale_error_left_in_the_queue_does_not_fail_the_connect() -> None:
    with served(SmuEmulator(load_ohm=1000.0)) as (emulator, address):
        emulator.errors.append((-113, "Undefined header"))  # another program's mistake
        smu = _bench_smu(address)
        assert (emulator.ovp_v, emulator.compliance_a, emulator.elements) == (20.0, 0.002, "VOLT,CURR,STAT")
        assert emulator.handle(":SYST:ERR?") == OK
        smu.close()


def test_set_read_back_and_measure_through_the_emulator() -> None:
    with served(SmuEmulator(load_ohm=1000.0)) as (emulator, address):
        smu = _bench_smu(address)
        smu.write_voltages(np.array([0]), np.array([1.5]))
        assert emulator.output and emulator.output_volts() == 1.5
        assert smu.read_voltages().tolist() == [1.5]
        assert smu.measure() == pytest.approx((1.5, 1.5e-3))
        smu.outputs_off()
        assert not emulator.output
        assert smu.read_voltages().tolist() == [0.0]
        smu.close()


def test_an_smu_left_with_auto_output_off_keeps_its_output_on_between_readings() -> None:
    left = SmuEmulator(load_ohm=1e6)
    left.handle(":SOUR:CLE:AUTO ON;:SOUR:VOLT:LEV 1;:FORM:ELEM VOLT")
    assert left.handle(":READ?") == "1.000000e+00" and not left.output  # what the driver must undo
    with served(SmuEmulator(load_ohm=1000.0)) as (emulator, address):
        emulator.auto_off = True
        smu = _bench_smu(address)
        assert not emulator.auto_off
        smu.write_voltages(np.array([0]), np.array([1.0]))  # the write takes a reading
        assert emulator.output and smu.read_voltages().tolist() == [1.0]
        smu.close()


def test_read_with_the_output_off_is_a_named_condition_and_never_reaches_the_instrument() -> None:
    emulator = SmuEmulator(load_ohm=1000.0)
    assert emulator.handle(":READ?") is None  # the 2400 answers nothing...
    assert emulator.handle(":SYST:ERR?") == '+803,"Not permitted with OUTPUT off"'  # ...and queues +803
    with served(emulator) as (_, address):
        smu = _bench_smu(address)
        with pytest.raises(OutputOff, match=r"smu \(TCPIP::127.0.0.1::\d+::SOCKET\) channel 1 \(ch0\): output off"):
            smu.measure()
        assert emulator.handle(":SYST:ERR?") == OK  # nothing was queued: :READ? was never sent
        smu.close()


def test_a_refused_write_names_the_smu_its_bench_channel_the_code_and_its_meaning() -> None:
    with served(SmuEmulator(load_ohm=1000.0)) as (emulator, address):
        smu = _bench_smu(address)
        emulator.faults.refuse = 1  # the next setting: the level
        refusal = (
            r"^smu \(TCPIP::127.0.0.1::\d+::SOCKET\) channel 1 \(ch0\): ':SOUR:VOLT:LEV 1.000000' was refused: "
            r"-300 Device-specific error$"
        )
        with pytest.raises(InstrumentError, match=refusal):
            smu.write_voltages(np.array([0]), np.array([1.0]))
        assert not emulator.output  # nothing after the refused level was sent
        smu.close()


def test_an_unanswered_read_has_its_error_blamed_on_it_not_on_the_next_setting() -> None:
    with served(SmuEmulator(load_ohm=1000.0)) as (emulator, address):
        smu = _bench_smu(address)
        smu.write_voltages(np.array([0]), np.array([1.0]))
        emulator.output = False  # switched off at the front panel, behind labsat's back
        with pytest.raises(InstrumentError, match=r"channel 1 \(ch0\): ':READ\?' was refused: \+803 Not permitted"):
            smu._reading()
        smu.write_voltages(np.array([0]), np.array([1.2]))  # the queue is clean: this setting is not blamed
        assert emulator.output and emulator.level == 1.2
        smu.close()


class Unanswered:
    """A transport on which ``:READ?`` times out and the error queue answers ``queue``."""

    address = "unanswered"

    def __init__(self, queue: list[str]) -> None:
        self.queue = queue

    def write(self, command: str) -> None:
        raise AssertionError(command)

    def query(self, command: str) -> str:
        if command == ":READ?":
            raise LinkError("unanswered: no reply to ':READ?'")
        return self.queue.pop(0) if self.queue else OK

    def close(self) -> None:
        pass


def test_an_unanswered_query_with_an_empty_error_queue_stays_a_link_error_worth_a_retry() -> None:
    with pytest.raises(LinkError, match="no reply"):
        Scpi(error_query=":SYST:ERR?").ask(Unanswered([]), ":READ?", "smu")
    with pytest.raises(InstrumentError, match=r"smu: ':READ\?' was refused: \+803 Not permitted"):
        Scpi(error_query=":SYST:ERR?").ask(Unanswered(['+803,"Not permitted with OUTPUT off"']), ":READ?", "smu")


def test_compliance_is_reported_and_the_read_back_is_what_the_load_sees() -> None:
    with served(SmuEmulator(load_ohm=1000.0)) as (emulator, address):
        smu = _bench_smu(address, ChannelLimits(voltage=(0.0, 5.0), resistance_ohm=1000.0, current_max_ma=1.0))
        with pytest.raises(
            InCompliance,
            match=r"smu \(.+\) channel 1 \(ch0\): in compliance: current limited at 0.001 A .+ the output is at 1 V, "
            r"not the programmed 2.5 V",
        ):
            smu.write_voltages(np.array([0]), np.array([2.5]))
        assert emulator.level == 2.5 and emulator.output_volts() == pytest.approx(1.0)
        assert smu.read_voltages().tolist() == pytest.approx([1.0])  # the load's voltage, not the level
        assert smu.in_compliance()
        emulator.faults.cut = 1  # a reconnect in compliance finds the output where it was
        assert smu.read_voltages().tolist() == pytest.approx([1.0])
        assert smu.link.reconnects == 1
        smu.write_voltages(np.array([0]), np.array([0.5]))  # back out of compliance
        assert not smu.in_compliance()
        assert smu.read_voltages().tolist() == [0.5]
        smu.close()


def test_after_a_power_cycle_the_output_stays_off_until_the_next_write() -> None:
    with served(SmuEmulator(load_ohm=1000.0)) as (emulator, address):
        smu = _bench_smu(address)
        smu.write_voltages(np.array([0]), np.array([1.5]))
        emulator.power_cycle()
        emulator.faults.cut = 1  # the link went down with it
        with pytest.raises(OutputsLost, match=r"found the output off after reconnecting where it was at 1\.5 V before"):
            smu.write_voltages(np.array([0]), np.array([1.6]))
        assert not emulator.output  # the interrupted write did not switch it on
        assert (emulator.ovp_v, emulator.compliance_a) == (20.0, 0.002)  # limits are back
        assert smu.read_voltages().tolist() == [0.0]
        smu.write_voltages(np.array([0]), np.array([0.5]))  # a new write (the guard's decision) does
        assert emulator.output and emulator.output_volts() == 0.5
        smu.close()


def test_an_output_found_on_at_connect_is_reported_lost_after_a_power_cycle() -> None:
    with served(SmuEmulator(load_ohm=1000.0)) as (emulator, address):
        emulator.handle(":SOUR:VOLT:LEV 0.7;:OUTP ON")  # left on by another program
        smu = _bench_smu(address)
        assert smu.read_voltages().tolist() == [0.7]
        emulator.power_cycle()
        emulator.faults.cut = 1
        assert smu.read_voltages().tolist() == [0.0]  # the read goes on and says what the output is now
        lost = smu.take_lost_outputs()
        assert lost is not None and lost.positions.tolist() == [0]
        assert "where it was at 0.7 V before" in lost.detail
        assert np.isnan(lost.set_points).all()  # labsat never set it: there is nothing of its own to restore
        smu.close()


def test_a_reconnect_that_finds_the_output_as_it_was_changes_nothing() -> None:
    with served(SmuEmulator(load_ohm=1000.0)) as (emulator, address):
        smu = _bench_smu(address)
        smu.write_voltages(np.array([0]), np.array([1.5]))
        emulator.faults.cut = 1
        assert smu.read_voltages().tolist() == [1.5]
        assert smu.link.reconnects == 1
        smu.close()


def test_an_smu_that_stops_answering_fails_within_the_policy_bound() -> None:
    with served(SmuEmulator(load_ohm=1000.0)) as (emulator, address):
        smu = _bench_smu(address)
        emulator.faults.silent = True
        started = time.monotonic()
        with pytest.raises(InstrumentError, match=r"smu \(.+\): ':SOUR:VOLT:LEV 1.000000' failed after 3 attempts"):
            smu.write_voltages(np.array([0]), np.array([1.0]))
        assert time.monotonic() - started < 2 * POLICY.worst_case_s(calls=2)
        smu.close()


# -- a 2450 --------------------------------------------------------------------------------------------


def test_a_2450_in_its_native_command_set_is_refused_at_connect_with_what_to_do() -> None:
    with served(SmuEmulator(load_ohm=1000.0, model="2450", command_set="SCPI")) as (emulator, address):
        assert emulator.handle(":SENS:CURR:PROT 0.001;:SYST:ERR?") == '-113,"Undefined header"'
        assert emulator.handle(":SOUR:VOLT:ILIM 0.001;:SYST:ERR?") == OK  # its own dialect
        with pytest.raises(
            InstrumentError,
            match=r"smu \(.+\): a Keithley 2450 in its SCPI command set is not supported by driver keithley24xx "
            r"\(it limits current with :SOUR:VOLT:ILIM.+\*LANG SCPI2400",
        ):
            _bench_smu(address)
        assert not emulator.output


def test_a_2450_in_the_2400_command_set_is_driven_as_a_2400() -> None:
    with served(SmuEmulator(load_ohm=1000.0, model="2450", command_set="SCPI2400")) as (emulator, address):
        smu = _bench_smu(address)
        smu.write_voltages(np.array([0]), np.array([1.0]))
        assert (emulator.compliance_a, emulator.ovp_v, emulator.output_volts()) == (0.002, 20.0, 1.0)
        smu.close()


# -- behind the guard ------------------------------------------------------------------------------


@pytest.fixture
def guarded(tmp_path: Path, data_dir: Path) -> Iterator[Guarded]:
    """The simulated MRR bench plus an SMU ``smu.v0`` (ramped in 0.5 V steps) on an emulated 2400 into 500 Ω."""
    data = yaml.safe_load((Path(__file__).parents[1] / "config" / "sim-mrr.yaml").read_text())
    with served(SmuEmulator(load_ohm=500.0)) as (emulator, address):
        data["devices"]["smu"] = {
            "driver": "keithley24xx",
            "kind": "voltage_source",
            "address": address,
            "channels": {"prefix": "v", "count": 1, "first": 1},
            "limits": {"voltage": [0.0, 5.0], "max_step": 0.5, "safe": 0.0},
            "options": {"compliance_a": 0.002, "timeout_s": POLICY.timeout_s, "retries": POLICY.retries},
        }
        path = tmp_path / "bench.yaml"
        path.write_text(yaml.safe_dump(data))
        with open_bench(path, data_dir=data_dir) as bench:
            yield bench, emulator


def test_behind_the_guard_a_power_cycle_is_restored_by_the_guard_then_the_write_goes_on(guarded: Guarded) -> None:
    bench, emulator = guarded
    smu = bench.source("smu")
    smu.set({"v0": 0.5})
    emulator.power_cycle()
    emulator.faults.cut = 1
    levels: list[float] = []
    handle = emulator.handle

    def recording(line: str) -> str | None:
        reply = handle(line)
        levels.append(emulator.output_volts() if emulator.output else 0.0)
        return reply

    emulator.handle = recording  # type: ignore[method-assign]
    smu.set({"v0": 0.8})  # the driver reports the output lost; the guard ramps it back, then on to 0.8
    assert emulator.output and emulator.output_volts() == 0.8
    assert smu.values().tolist() == [0.8]
    rises = np.diff([0.0, *levels])
    assert rises.max() <= 0.5 + 1e-9  # never more than one guard step (max_step 0.5 V) at a time
    bench.safe_state()
    assert not emulator.output


def test_behind_the_guard_a_power_cycle_while_halted_leaves_the_output_off(guarded: Guarded) -> None:
    bench, emulator = guarded
    smu = bench.source("smu")
    smu.set({"v0": 0.5})
    bench.guard.halt("test")
    emulator.power_cycle()
    emulator.faults.cut = 1
    assert smu.read_back().tolist() == [0.0]  # reconnects; the guard does not restore while halted
    assert not emulator.output
    with pytest.raises(Halted):
        smu.set({"v0": 0.5})
    assert not emulator.output


def test_behind_the_guard_compliance_is_reported_and_the_guard_keeps_the_real_output(guarded: Guarded) -> None:
    bench, emulator = guarded
    assert emulator.compliance_a == 0.002
    smu = bench.source("smu")
    with pytest.raises(InCompliance, match=r"smu \(.+\) channel 1 \(v0\): in compliance: current limited at 0.002 A"):
        smu.set({"v0": 1.5})  # 3 mA into 500 Ω; the compliance is 2 mA
    assert smu.values().tolist() == pytest.approx([1.0])  # what the load sees, not the 1.5 V asked for
