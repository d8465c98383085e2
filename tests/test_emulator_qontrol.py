"""The emulated Qontrol chain speaks the vendor's protocol (qontrol.py and the recorded Q8iv session)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import serial

from labsat.simulators.emulators import protocol_labsatemu
from labsat.simulators.emulators.qontrol import MODELS, Module, QontrolEmulator, module


class Outputs:
    """An in-memory backend standing in for the simulated chip's heaters."""

    def __init__(self, n: int) -> None:
        self.volts = np.zeros(n)
        self.n_channels = n

    def identity(self) -> str:
        return "memory"

    def read_voltages(self) -> np.ndarray:
        return self.volts.copy()

    def write_voltages(self, positions: np.ndarray, volts: np.ndarray) -> None:
        self.volts[positions] = volts

    def outputs_off(self) -> None:
        self.volts[:] = 0.0


def _emulator(n: int = 16, seed: int = 0) -> QontrolEmulator:
    return QontrolEmulator(Outputs(n), [1000.0] * n, seed=seed)


def test_settings_answer_ok_and_readings_carry_units_and_noise() -> None:
    emulator = _emulator()
    assert emulator.handle("v3=1.5") == "OK"
    assert emulator.handle("VMAX3?") == "+12.0000 V"  # the vendor library sends upper case
    assert emulator.handle("imax3?") == "+24.0000 mA"
    readings = [emulator.handle("v3?") for _ in range(20)]
    assert all(r is not None and r.endswith(" V") and r.startswith("+") for r in readings)
    volts = np.array([float(r.split()[0]) for r in readings if r])
    assert len(set(readings)) > 1  # a measurement, not an echo of the set point
    assert np.abs(volts - 1.5).max() < 1e-3
    assert emulator.handle("i3?").endswith(" mA")  # type: ignore[union-attr]
    assert float(emulator.handle("i3?").split()[0]) == pytest.approx(1.5, abs=1e-3)  # type: ignore[union-attr]


def test_the_noise_is_seeded() -> None:
    first, second = _emulator(seed=3), _emulator(seed=3)
    assert [first.handle("v0?") for _ in range(5)] == [second.handle("v0?") for _ in range(5)]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("x1=2", "E10:00"),
        ("v1=abc", "E11:01"),
        ("v1=-1", "E11:01"),
        ("vmax1=12.5", "E11:01"),
        ("v99=1", "E12:99"),
        ("i1=2", "E13:01"),
        ("vvec0=" + ",".join(["1.2345"] * 10), "E14:01"),  # 65 characters: one instruction too long
        ("V0=6.48,10.36,1.74,7.55,5.61,11.32,7.23,1.2,2.23,9.51,11.09,6.06,9.64,0.44,9.56,11.09", "E14:00\nE15:00"),
    ],
)
def test_refusals_are_error_codes_with_the_channel(line: str, reply: str) -> None:
    assert _emulator().handle(line) == reply


def test_over_voltage_and_over_current_are_clamped_and_reported() -> None:
    backend = Outputs(4)
    emulator = QontrolEmulator(backend, [1000.0] * 4)
    assert emulator.handle("vmax1=2.0") == "OK"
    assert emulator.handle("imax2=1.5") == "OK"
    assert emulator.handle("v1=3.0") == "E01:01"
    assert emulator.handle("v2=3.0") == "E02:02"
    np.testing.assert_allclose(backend.volts, [0.0, 2.0, 1.5, 0.0])


def test_a_vector_spanning_modules_is_answered_once_per_module() -> None:
    backend = Outputs(16)
    emulator = QontrolEmulator(backend, [1000.0] * 16)
    assert emulator.handle("vvec6=1,2,3,4") == "OK\nOK"  # channels 6, 7 | 8, 9
    np.testing.assert_array_equal(backend.volts[5:11], [0, 1, 2, 3, 4, 0])
    emulator.handle("vmax9=3.5")
    assert emulator.handle("vvec6=1,2,3,4") == "OK\nE01:09"
    assert backend.volts[9] == 3.5


def test_the_vendor_librarys_vector_writes_are_taken_module_by_module() -> None:
    """``QXOutput.set_all_values`` in ASCII mode: ``VVEC{first}=`` per module, values as ``{:}`` formats them."""
    backend = Outputs(16)
    emulator = QontrolEmulator(backend, [1000.0] * 16)
    values: list[float | int] = [0, 1.5, 2.25, 3, 0.5, 1, 0, 2, 1, 1, 1, 1, 0, 0, 0, 4]
    for first in (0, 8):  # the library's own formatting: '{0}{1}{2}{3}' then ',{:}' per further value
        line = f"VVEC{first}={values[first]}" + "".join(f",{v}" for v in values[first + 1 : first + 8])
        assert emulator.handle(line) == "OK"
    np.testing.assert_array_equal(backend.volts, values)


def test_the_chain_describes_itself_module_by_module() -> None:
    chain = [MODELS["Q8iv"], MODELS["Q8b"], module({"model": "Q8a", "channels": 16})]
    emulator = QontrolEmulator(Outputs(8), [1000.0] * 8, first=8, modules=chain)
    assert emulator.handle("idall?") == "Q8iv-0001\nQ8b-0002\nQ8a-0003"
    assert emulator.handle("id?") == "Q8iv-0001"  # the module on the USB port
    assert emulator.handle("id12?") == "Q8b-0002"
    assert emulator.handle("nchanall?") == "8\n8\n16"
    assert emulator.handle("vfullall?") == "+12.0000 V\n+12.0000 V\n+12.0000 V"
    assert emulator.handle("ifullall?") == "+24.0000 mA\n+83.3333 mA\n+100.0000 mA"
    assert emulator.handle("ifull?") == "+24.0000 mA"
    assert len(emulator.handle("vall?").split("\n")) == 32  # type: ignore[union-attr]
    assert emulator.handle("imax12=50") == "OK"  # within the Q8b's full scale, beyond a Q8iv's
    assert emulator.handle("imax3=50") == "E11:03"


def test_vipall_reports_every_channel_with_power_where_current_flows() -> None:
    emulator = _emulator(8)
    emulator.handle("v5=2")
    lines = emulator.handle("vipall?").split("\n")  # type: ignore[union-attr]
    assert len(lines) == 8
    assert lines[0].startswith("0,0: ") and lines[0].endswith(" mA")
    head, _, rest = lines[5].partition(": ")
    volts, current, power, load = rest.split(", ")
    assert head == "0,5" and volts.endswith(" V") and current.endswith(" mA")
    assert float(power.split()[0]) == pytest.approx(4.0, abs=0.01) and load.split() == ["1000", "Ohm"]


def test_unknown_models_and_channel_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown Qontrol model 'Q9'"):
        module("Q9")
    with pytest.raises(ValueError, match="8 or 16 channels, not 12"):
        module({"model": "Q8iv", "channels": 12})
    with pytest.raises(ValueError, match="do not fit a chain of 8 channels"):
        QontrolEmulator(Outputs(4), [1000.0] * 4, first=6, modules=[Module("Q8iv", 8, 12.0, 24.0)])


def test_a_power_cycle_resets_and_announces_itself_unsolicited() -> None:
    backend = Outputs(2)
    emulator = QontrolEmulator(backend, [1000.0] * 2)
    url = protocol_labsatemu.publish("qontrol-power", emulator)
    try:
        port = serial.serial_for_url(url, baudrate=115200, timeout=0.05)
        port.write(b"vmax0=1\nv0=1\n")
        assert port.read_until(b"\n") + port.read_until(b"\n") == b"OK\nOK\n"
        emulator.power_cycle()
        assert port.read_until(b"\n") == b"E90:00\n"  # nobody asked
        port.write(b"vmax0?\n")
        assert port.read_until(b"\n") == b"+12.0000 V\n"
        assert backend.volts.tolist() == [0.0, 0.0]
        port.close()
    finally:
        protocol_labsatemu.withdraw("qontrol-power")


def test_a_port_at_the_wrong_baud_rate_reads_noise() -> None:
    url = protocol_labsatemu.publish("qontrol-baud", _emulator(2))
    try:
        port = serial.serial_for_url(url, baudrate=9600, timeout=0.05)
        port.write(b"id?\n")
        assert b"Q8iv" not in port.read(100)
        port.baudrate = 115200
        port.reset_input_buffer()
        port.write(b"id?\n")
        assert port.read_until(b"\n") == b"Q8iv-0001\n"
        port.close()
    finally:
        protocol_labsatemu.withdraw("qontrol-baud")


def test_a_line_that_stops_arriving_half_way_is_dropped_with_e16() -> None:
    backend = Outputs(2)
    emulator = QontrolEmulator(backend, [1000.0] * 2)
    emulator.line_timeout_s = 0.02
    url = protocol_labsatemu.publish("qontrol-slow", emulator)
    try:
        port = serial.serial_for_url(url, baudrate=115200, timeout=0.05)
        port.write(b"v0=")
        time.sleep(0.05)
        port.write(b"1\n")
        assert port.read_until(b"\n") == b"E16:00\n"
        assert backend.volts[0] == 0.0  # not executed
        port.write(b"v0=1\n")
        assert port.read_until(b"\n") == b"OK\n"
        port.close()
    finally:
        protocol_labsatemu.withdraw("qontrol-slow")
