"""Wire-level emulators: their protocols, their front ends, and the emulated MRR bench end to end."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import serial
import torch
import yaml
from typer.testing import CliRunner

from labsat.bench import Bench, open_bench
from labsat.cli import app
from labsat.errors import BenchFileError
from labsat.simulators.emulators import protocol_labsatemu
from labsat.simulators.emulators.qontrol import QontrolEmulator
from labsat.simulators.emulators.scpi import DacEmulator, DaqEmulator, header_pattern
from labsat.simulators.emulators.smu import SmuEmulator
from labsat.simulators.emulators.tcp import TcpServer

CONFIG = Path(__file__).parents[1] / "config"


class Outputs:
    """An in-memory backend: a VoltageSource that is also a Detector reading twice its outputs."""

    def __init__(self, n: int) -> None:
        self.volts = np.zeros(n)
        self.n_channels = n
        self.integration_time = 1e-3
        self.writes: list[tuple[list[int], list[float]]] = []

    def identity(self) -> str:
        return "memory"

    def write_voltages(self, positions: np.ndarray, volts: np.ndarray) -> None:
        self.volts[positions] = volts
        self.writes.append((list(positions), list(volts)))

    def read_voltages(self) -> np.ndarray:
        return self.volts.copy()

    def outputs_off(self) -> None:
        self.volts[:] = 0.0

    def read(self) -> np.ndarray:
        return 2 * self.volts


# -- the SCPI interpreter --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", ["SOUR2:VOLT", "sour2:volt:lev", ":SOURce2:VOLTage:LEVel:IMM:AMPLitude", "SOUR:VOLT"]
)
def test_scpi_headers_match_short_long_and_optional_forms(header: str) -> None:
    assert header_pattern("SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]").fullmatch(header)


@pytest.mark.parametrize("header", ["SOURC2:VOLT", "SOUR2:VOLTAGES", "SOUR2:LEV"])
def test_scpi_headers_reject_partial_mnemonics(header: str) -> None:
    assert not header_pattern("SOURce#:VOLTage[:LEVel]").fullmatch(header)


def test_scpi_dac_runs_compound_messages_and_keeps_an_error_queue() -> None:
    backend = Outputs(2)
    dac = DacEmulator(backend, first=1)
    assert (
        dac.handle("SOUR1:VOLT 0.5;:OUTP1 ON;:SOUR2:VOLT:LIM:HIGH 1.0;:SOUR2:VOLT:LIM:STAT ON;:SOUR2:VOLT 1.5") is None
    )
    assert dac.handle("SYST:ERR?") == '-222,"Data out of range"'
    assert dac.handle("SYST:ERR?") == '0,"No error"'
    assert backend.writes == [([0], [0.5])]  # one backend write per message; the refused value never arrives
    assert dac.handle("SOUR1:VOLT?;SOUR2:VOLT?") == "0.500000;0.000000"
    assert (
        dac.handle("SOUR9:VOLT 1;:BOGUS 3;:SYST:ERR?;:SYST:ERR?")
        == '-114,"Header suffix out of range";-113,"Undefined header"'
    )
    assert dac.handle("*IDN?") == "LABSAT,EMU-DAC2,EMU0001,1.0"


def test_scpi_daq_reads_channel_lists_from_its_backend() -> None:
    backend = Outputs(4)
    backend.volts[:] = [0.1, 0.2, 0.3, 0.4]
    daq = DaqEmulator(backend, first=1)
    assert [float(v) for v in daq.handle("MEAS:VOLT? (@2:3,1)").split(",")] == [0.4, 0.6, 0.2]  # type: ignore[union-attr]


def test_smu_limits_the_current_to_its_compliance_and_says_so_in_the_status_word() -> None:
    smu = SmuEmulator(load_ohm=1000.0)
    smu.handle(":SENS:CURR:PROT 0.001;:SOUR:VOLT:LEV 2.5;:OUTP ON;:FORM:ELEM VOLT,CURR")
    assert smu.handle(":READ?") == "1.000000e+00,1.000000e-03"
    smu.handle(":FORM:ELEM STAT")
    assert int(float(smu.handle(":READ?") or "0")) & 0b1000  # bit 3: compliance
    assert smu.handle(":SENS:CURR:PROT:TRIP?") == "1"


@pytest.mark.parametrize(("sent", "kept"), [(5, 20), (20, 20), (110, 100), (160, 160), (161, 210), (-30, 20)])
def test_smu_ovp_takes_the_2400s_discrete_levels_rounding_down(sent: float, kept: float) -> None:
    smu = SmuEmulator(load_ohm=1e6)
    smu.handle(f":SOUR:VOLT:PROT {sent}")
    assert smu.handle(":SOUR:VOLT:PROT?") == f"{kept:g}"


def test_smu_output_never_exceeds_the_ovp() -> None:
    smu = SmuEmulator(load_ohm=1e6)
    smu.handle(":SOUR:VOLT:RANG 200;:SOUR:VOLT:PROT 20;:SOUR:VOLT:LEV 30;:OUTP ON;:FORM:ELEM VOLT,STAT")
    volts, status = (float(v) for v in (smu.handle(":READ?") or "").split(","))
    assert volts == 20.0 and int(status) & 0b10000  # bit 4: OVP


# (the Qontrol chain's own protocol: tests/test_emulator_qontrol.py)


# -- front ends ------------------------------------------------------------------------------------


def test_serial_url_handler_reaches_a_published_emulator_only() -> None:
    url = protocol_labsatemu.publish("test-url", QontrolEmulator(Outputs(2), [1000.0] * 2))
    try:
        port = serial.serial_for_url(url, baudrate=115200, timeout=0.1)
        port.write(b"id?\n")
        assert port.read_until(b"\n") == b"Q8iv-0001\n"
        port.close()
    finally:
        protocol_labsatemu.withdraw("test-url")
    with pytest.raises(serial.SerialException, match="no emulated instrument at labsatemu://test-url"):
        serial.serial_for_url(url)


def test_tcp_server_listens_on_loopback_only_and_stops_cleanly() -> None:
    before = {t.name for t in threading.enumerate()}
    server = TcpServer(DaqEmulator(Outputs(2)), name="probe")
    assert server._listener.getsockname()[0] == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", server.port), timeout=1) as client:
        client.sendall(b"*IDN?\n")
        assert client.recv(100) == b"LABSAT,EMU-DAQ2,EMU0001,1.0\n"
        server.stop()
        with pytest.raises(ConnectionResetError):  # stopping drops every link, like switching the instrument off
            client.recv(100)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=0.5)
    assert {t.name for t in threading.enumerate()} - before == set()


# -- the emulated bench ----------------------------------------------------------------------------


@pytest.fixture
def emu_bench(data_dir: Path) -> Iterator[Bench]:
    with open_bench(CONFIG / "emu-mrr.yaml", data_dir=data_dir) as bench:
        yield bench
    bench.shared["emulators"].close()


def test_emulated_bench_is_the_default_bench_through_real_drivers() -> None:
    emulated = yaml.safe_load((CONFIG / "emu-mrr.yaml").read_text())
    simulated = yaml.safe_load((CONFIG / "sim-mrr.yaml").read_text())
    for section in ("seed", "clock", "limits", "system", "simulator"):
        assert emulated[section] == simulated[section], section
    for name, device in emulated["devices"].items():
        assert device["address"].startswith("emulate://mrr/")
        assert device.get("limits") == simulated["devices"][name].get("limits")


def test_a_heater_write_moves_the_detector_reading_through_the_wire(emu_bench: Bench) -> None:
    emu_bench.source("modulators").set_vector(np.full(8, 2.0))
    before = emu_bench.detectors["detectors"].read()
    emu_bench.source("heaters").set({"h0": 2.0, "h9": 2.5})
    after = emu_bench.detectors["detectors"].read()
    assert np.abs(after - before)[:2].min() > 10 * np.abs(after - before)[2:].max() > 0
    lab = emu_bench.shared["emulators"]
    assert float(lab.emulator("heaters").handle("v9?").split()[0]) == pytest.approx(2.5, abs=1e-3)
    assert lab.emulator("heaters").handle("vmax9?") == "+4.0000 V"  # device-side limits came from the bench
    assert lab.emulator("modulators").handle("SOUR8:VOLT:LIM:HIGH?") == "2.200000"


def test_the_emulated_bench_safe_state_opens_the_modulator_relays(emu_bench: Bench) -> None:
    emu_bench.source("modulators").set_vector(np.full(8, 1.0))
    modulators = emu_bench.shared["emulators"].emulator("modulators")
    assert modulators.output.all() and modulators.limit_on.all()
    emu_bench.safe_state()
    assert not modulators.output.any()
    assert modulators.handle("SOUR1:VOLT?") == "0.000000"


def test_emulated_forward_agrees_with_the_simulated_bench(emu_bench: Bench, data_dir: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(6, 8, generator=generator)
    controls = 1.0 + 2.0 * torch.rand(8, 8, generator=generator)
    with open_bench(CONFIG / "sim-mrr.yaml", data_dir=data_dir / "sim") as simulated:
        expected = simulated.system.forward(x, controls)
    got = emu_bench.system.forward(x, controls)
    scale = expected.abs().max()
    assert torch.allclose(got, expected, atol=0.01 * float(scale)), (got - expected).abs().max()


@pytest.mark.parametrize(
    ("device", "change", "message"),
    [
        ("detectors", {"driver": "thorlabs_pm"}, "no emulator for driver 'thorlabs_pm'"),
        ("heaters", {"address": "emulate://mzi/heaters"}, r"expected emulate://<chip>/<role> with chip in \['mrr'\]"),
    ],
)
def test_an_emulate_address_that_cannot_be_served_names_the_key(
    tmp_path: Path, device: str, change: dict[str, str], message: str
) -> None:
    data = yaml.safe_load((CONFIG / "emu-mrr.yaml").read_text())
    data["devices"][device].update(change)
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(BenchFileError, match=rf"bench\.yaml: devices\.{device}\.address: {message}"):
        open_bench(path)


def test_labsat_devices_lists_the_emulated_instruments_with_their_identity() -> None:
    result = CliRunner().invoke(app, ["devices", "--bench", str(CONFIG / "emu-mrr.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    devices = {d["name"]: d for d in json.loads(result.stdout)["devices"]}
    assert devices["heaters"]["identity"] == ", ".join(f"Q8iv-{k:04d}" for k in range(1, 9))  # a chain of 8
    assert devices["modulators"]["identity"] == "LABSAT,EMU-DAC8,EMU0001,1.0"
    assert devices["detectors"]["identity"] == "LABSAT,EMU-DAQ8,EMU0001,1.0"
    assert devices["heaters"]["driver"] == "qontrol"
    assert len(devices["heaters"]["channels"]) == 64
