"""Faults on the wire: real drivers against emulators whose fault switches are flipped.

Every fault ends in recovery by the retry policy or in a clear InstrumentError within the policy's
worst case, never a hang; a write that fails leaves no channel at a value nobody allowed; limits are
pushed again after a reconnect. Timeouts are tight (0.15 s) so each test takes well under 5 s.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from labsat.bench import Bench, open_bench
from labsat.benchfile import ChannelLimits
from labsat.drivers.conditions import OutputsLost
from labsat.drivers.instrument import Scpi
from labsat.drivers.keithley import Keithley24xx
from labsat.drivers.qontrol import QontrolDriver
from labsat.drivers.scpi_dac import ScpiDac
from labsat.drivers.scpi_daq import ScpiDaq
from labsat.drivers.thorlabs_pm import ThorlabsPM
from labsat.drivers.transport import Link, RetryPolicy, transport_opener
from labsat.errors import InstrumentError
from labsat.simulators.emulators import protocol_labsatemu
from labsat.simulators.emulators.memory import MemoryBackend as Outputs
from labsat.simulators.emulators.powermeter import PowerMeterEmulator
from labsat.simulators.emulators.qontrol import QontrolEmulator
from labsat.simulators.emulators.scpi import DacEmulator, DaqEmulator
from labsat.simulators.emulators.smu import SmuEmulator
from labsat.simulators.emulators.tcp import TcpServer

POLICY = RetryPolicy(timeout_s=0.15, retries=2, backoff_s=0.01)
LIMITS = ChannelLimits(voltage=(0.0, 4.0), resistance_ohm=1000.0, current_max_ma=4.5)
_keys = itertools.count()


def _link(name: str, address: str) -> Link:
    return Link(name, address, transport_opener(address, {}, POLICY.timeout_s), POLICY)


@pytest.fixture
def qontrol() -> Iterator[tuple[QontrolDriver, QontrolEmulator, Outputs]]:
    backend = Outputs(4)
    emulator = QontrolEmulator(backend, [1000.0] * 4)
    key = f"faults-{next(_keys)}"
    url = protocol_labsatemu.publish(key, emulator)
    driver = QontrolDriver("heaters", _link("heaters", url), range(4), [LIMITS] * 4).connect()
    yield driver, emulator, backend
    driver.close()
    protocol_labsatemu.withdraw(key)


@pytest.fixture
def dac() -> Iterator[tuple[ScpiDac, DacEmulator, Outputs]]:
    backend = Outputs(4)
    with TcpServer(DacEmulator(backend, first=1), name="dac") as server:
        driver = ScpiDac("mods", _link("mods", server.address), [1, 2, 3, 4], [LIMITS] * 4, dialect=Scpi()).connect()
        yield driver, server.emulator, backend  # type: ignore[misc]
        driver.close()


# -- the link drops ----------------------------------------------------------------------------------


def test_link_dropping_mid_write_recovers_by_retry_serial(qontrol: Any) -> None:
    driver, emulator, backend = qontrol
    emulator.faults.cut = 1
    driver.write_voltages(np.arange(4), np.array([0.5, 1.0, 1.5, 2.0]))
    assert backend.volts.tolist() == [0.5, 1.0, 1.5, 2.0]
    assert driver.link.reconnects == 1


def test_link_dropping_mid_write_recovers_by_retry_tcp(dac: Any) -> None:
    driver, emulator, backend = dac
    emulator.faults.cut = 1
    driver.write_voltages(np.arange(4), np.array([0.5, 1.0, 1.5, 2.0]))
    assert backend.volts.tolist() == [0.5, 1.0, 1.5, 2.0]
    assert driver.link.reconnects == 1


def test_a_lost_acknowledgement_is_repeated_safely(qontrol: Any) -> None:
    driver, emulator, backend = qontrol
    emulator.faults.lose_reply = 1  # executed, then the link drops before "OK"
    driver.write_voltages(np.array([2]), np.array([1.25]))
    assert backend.volts[2] == 1.25
    assert driver.read_voltages()[2] == 1.25


# -- the instrument stops answering ----------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["qontrol", "dac"])
def test_an_instrument_that_stops_answering_fails_clearly_within_the_worst_case(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    driver, emulator, _ = request.getfixturevalue(fixture)
    emulator.faults.silent = True
    started = time.monotonic()
    with pytest.raises(InstrumentError, match=rf"{driver.name} \(.+\): '.+' failed after 3 attempts; last: .*"):
        driver.write_voltages(np.array([0]), np.array([1.0]))
    # the failed write, then the failed attempt to read the outputs back: each bounded by the policy
    assert time.monotonic() - started < 2 * POLICY.worst_case_s(calls=2)


# -- garbled replies -------------------------------------------------------------------------------


def test_a_garbled_reply_is_retried(qontrol: Any) -> None:
    driver, emulator, _ = qontrol
    driver.write_voltages(np.array([1]), np.array([0.75]))
    emulator.faults.garble = 1
    assert driver.read_voltages()[1] == 0.75
    assert driver.link.reconnects == 1


def test_garbage_that_does_not_stop_is_an_error(qontrol: Any) -> None:
    driver, emulator, _ = qontrol
    emulator.faults.garble = 100
    with pytest.raises(InstrumentError, match="garbled reply"):
        driver.read_voltages()


def test_a_garbled_detector_reading_is_retried() -> None:
    backend = Outputs(3)
    backend.volts[:] = [0.1, 0.2, 0.3]
    with TcpServer(DaqEmulator(backend, first=1), name="daq") as server:
        daq = ScpiDaq("pd", _link("pd", server.address), [1, 2, 3]).connect()
        server.emulator.faults.garble = 2
        assert daq.read().tolist() == [0.1, 0.2, 0.3]
        daq.close()


# -- errors the instrument reports ---------------------------------------------------------------------


def test_an_instrument_error_is_reported_not_retried_and_the_outputs_are_read_back(qontrol: Any) -> None:
    driver, emulator, backend = qontrol
    emulator.faults.refuse = 1
    lines = emulator.lines
    with pytest.raises(InstrumentError, match=r"'v0=1' was refused: E13:00, operation forbidden on channel 0"):
        driver.write_voltages(np.array([0, 1]), np.array([1.0, 2.0]))
    assert emulator.lines == lines + 1 + 1  # one attempt, then the read-back (vall?)
    np.testing.assert_allclose(driver._last, backend.volts, atol=0.01)


def test_a_device_side_clamp_is_an_error_and_the_driver_learns_the_clamped_value(qontrol: Any) -> None:
    driver, emulator, backend = qontrol
    emulator.handle("vmax3=1.0")  # someone lowered vmax at the front panel
    with pytest.raises(InstrumentError, match="'v3=2' was refused: E01:03, over-voltage on channel 3"):
        driver.write_voltages(np.array([3]), np.array([2.0]))
    assert backend.volts[3] == 1.0
    assert driver.read_voltages()[3] == pytest.approx(1.0, abs=0.01)  # measured: the set point was never taken


def test_scpi_error_queue_is_reported_with_the_command(dac: Any) -> None:
    driver, emulator, backend = dac
    emulator.faults.refuse = 1
    with pytest.raises(
        InstrumentError,
        match=r"mods \(TCPIP::127.0.0.1::\d+::SOCKET\): 'SOUR1:VOLT 1.000000;:OUTP1 ON' was "
        r"refused: -300 Device-specific error; not applied on channel 1$",
    ):
        driver.write_voltages(np.array([0]), np.array([1.0]))
    assert backend.volts[0] == 0.0


# -- reconnects ------------------------------------------------------------------------------------


def test_limits_are_reasserted_and_lost_outputs_reported_after_the_instrument_was_power_cycled(qontrol: Any) -> None:
    driver, emulator, backend = qontrol
    driver.write_voltages(np.arange(4), np.array([1.0, 2.0, 0.0, 3.0]))
    emulator.power_cycle()  # outputs at 0, vmax/imax back at full scale...
    emulator.faults.cut = 1  # ...and the USB link went down with it
    with pytest.raises(OutputsLost):  # planned from outputs that are gone: not repeated
        driver.write_voltages(np.array([2]), np.array([0.5]))
    assert emulator.vmax[:4].tolist() == [4.0] * 4  # the module's other four channels are not the bench's
    assert emulator.imax[:4].tolist() == [4.5] * 4
    assert backend.volts.tolist() == [0.0] * 4  # no output written back by the driver
    lost = driver.take_lost_outputs()
    assert lost is not None and lost.positions.tolist() == [0, 1, 3] and lost.set_points.tolist() == [1.0, 2.0, 3.0]


def test_smu_limits_are_reasserted_after_a_power_cycle_but_the_output_stays_off() -> None:
    with TcpServer(SmuEmulator(load_ohm=1000.0), name="smu") as server:
        limits = ChannelLimits(voltage=(0.0, 5.0), resistance_ohm=1000.0, current_max_ma=2.0)
        smu = Keithley24xx("smu", _link("smu", server.address), [1], [limits], 0.002).connect()
        smu.write_voltages(np.array([0]), np.array([1.5]))
        emulator = server.emulator
        emulator.power_cycle()
        emulator.faults.cut = 1
        assert smu.read_voltages().tolist() == [0.0]
        lost = smu.take_lost_outputs()
        assert lost is not None and lost.set_points.tolist() == [1.5]
        assert "found the output off" in lost.detail
        assert emulator.compliance_a == 0.002  # type: ignore[attr-defined]
        assert emulator.ovp_v == 20.0  # type: ignore[attr-defined]
        assert emulator.output is False  # type: ignore[attr-defined]
        smu.close()


def test_power_meter_settings_are_reasserted_after_a_reconnect() -> None:
    with TcpServer(PowerMeterEmulator(lambda: 2.5e-4), name="pm") as server:
        meter = ThorlabsPM("pm", _link("pm", server.address), wavelength_nm=1310, average_count=20).connect()
        emulator = server.emulator
        emulator.power_cycle()
        emulator.faults.cut = 1
        assert meter.read().tolist() == [2.5e-4]
        assert (emulator.wavelength_nm, emulator.average_count) == (1310.0, 20)  # type: ignore[attr-defined]
        meter.close()


def test_dac_limits_and_daq_aperture_are_reasserted_after_a_reconnect(dac: Any) -> None:
    driver, emulator, _ = dac
    emulator.power_cycle()
    emulator.faults.cut = 1
    driver.write_voltages(np.array([0]), np.array([1.0]))
    assert emulator.high.tolist() == [4.0] * 4
    with TcpServer(DaqEmulator(Outputs(2), first=1), name="daq") as server:
        daq = ScpiDaq("pd", _link("pd", server.address), [1, 2], integration_time_s=0.01).connect()
        server.emulator.power_cycle()
        server.emulator.faults.lose_reply = 1
        daq.read()
        assert server.emulator.aperture.tolist() == [0.01, 0.01]  # type: ignore[attr-defined]
        daq.close()


def test_a_different_instrument_on_the_port_is_refused(qontrol: Any) -> None:
    driver, emulator, backend = qontrol
    emulator.identity = "Q8iv-9999"
    emulator.faults.cut = 1
    with pytest.raises(InstrumentError, match="a different instrument answers after reconnecting: 'Q8iv-9999'"):
        driver.write_voltages(np.array([0]), np.array([1.0]))
    assert backend.volts[0] == 0.0


# -- what a failed write leaves behind ----------------------------------------------------------


def test_an_interrupted_per_channel_write_never_exceeds_the_power_of_either_end() -> None:
    backend = Outputs(4)
    backend.volts[:] = [0.0, 0.0, 3.0, 3.0]
    emulator = QontrolEmulator(backend, [1000.0] * 4)
    url = protocol_labsatemu.publish(f"faults-{next(_keys)}", emulator)
    driver = QontrolDriver("heaters", _link("heaters", url), range(4), [LIMITS] * 4, vector_write=False).connect()
    backend.on_write = lambda: setattr(emulator.faults, "hang_after", 0) if len(backend.states) == 3 else None
    with pytest.raises(InstrumentError):
        driver.write_voltages(np.arange(4), np.array([3.0, 3.0, 0.0, 0.0]))  # swap the hot channels
    power = [float(np.sum(state**2)) for state in backend.states]
    assert max(power) <= 18.0  # a naive order (channel 0 first) would have passed through 27 and 36
    assert backend.volts.tolist() == [3.0, 0.0, 0.0, 0.0]  # stopped half-way, at a point between the ends
    emulator.faults.silent = False
    assert driver.read_voltages().tolist() == [3.0, 0.0, 0.0, 0.0]
    protocol_labsatemu.withdraw(url.partition("://")[2])


@pytest.fixture
def fast_emu_bench(tmp_path: Path, data_dir: Path) -> Iterator[Bench]:
    """The emulated bench with tight link timeouts."""
    data = yaml.safe_load((Path(__file__).parents[1] / "config" / "emu-mrr.yaml").read_text())
    for device in data["devices"].values():
        device["options"] = {"timeout_s": POLICY.timeout_s, "retries": POLICY.retries, "backoff_s": POLICY.backoff_s}
    path = tmp_path / "emu-fast.yaml"
    path.write_text(yaml.safe_dump(data))
    with open_bench(path, data_dir=data_dir) as bench:
        yield bench
    bench.shared["emulators"].close()


def test_a_ramp_that_hangs_leaves_the_heaters_at_a_point_the_guard_allowed(fast_emu_bench: Bench) -> None:
    heaters = fast_emu_bench.source("heaters")
    emulator = fast_emu_bench.shared["emulators"].emulator("heaters")
    emulator.faults.hang_after = 2  # two ramp steps of 0.5 V go through, the third hangs
    target = np.zeros(64)
    target[:8] = 2.0
    with pytest.raises(InstrumentError, match=r"heaters \(labsatemu://.+\): 'vvec0=1.5,.+' failed after 3"):
        heaters.set_vector(target)
    np.testing.assert_array_equal(emulator.volts[:8], 1.0)  # the second ramp point: validated by the guard
    np.testing.assert_array_equal(emulator.volts[8:], 0.0)
    assert np.isnan(heaters.values()).all()  # the instrument went silent: the guard trusts no cached value
    emulator.faults.silent = False
    np.testing.assert_array_equal(heaters.read_back(), emulator.volts)
    np.testing.assert_array_equal(heaters.present(), emulator.volts)  # re-read once it answers again


def test_a_power_cycle_writes_no_output_from_the_driver() -> None:
    backend = Outputs(8)  # one whole module
    emulator = QontrolEmulator(backend, [1000.0] * 8)
    url = protocol_labsatemu.publish("faults-no-driver-restore", emulator)
    ramped = ChannelLimits(voltage=(0.0, 4.0), resistance_ohm=1000.0, max_step=0.5)
    driver = QontrolDriver("heaters", _link("heaters", url), range(8), [ramped] * 8).connect()
    target = [1.0, 2.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]
    driver.write_voltages(np.arange(8), np.array(target))
    emulator.power_cycle()
    emulator.faults.cut = 1
    backend.states.clear()
    assert driver.read_voltages().tolist() == [0.0] * 8  # reconnects, pushes the limits, and writes no output
    assert list(backend.states) == []
    lost = driver.take_lost_outputs()
    assert lost is not None and lost.positions.tolist() == [0, 1, 3] and lost.set_points.tolist() == [1.0, 2.0, 3.0]
    assert np.isnan(driver.commanded[[0, 1, 3]]).all()  # lost set points are no set points any more
    received: list[str] = []
    handle = emulator.handle
    emulator.handle = lambda line: (received.append(line), handle(line))[1]  # type: ignore[method-assign]
    driver.write_voltages(np.array([1, 2]), np.array([0.5, 0.5]))
    assert [line for line in received if "=" in line] == ["v1=0.5", "v2=0.5"]  # no vvec carrying a lost 1 or 3 V
    assert backend.volts.tolist() == [0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]
    driver.close()
    protocol_labsatemu.withdraw("faults-no-driver-restore")
