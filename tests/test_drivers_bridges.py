"""PyMeasure and QCoDeS instruments as labsat devices (``driver: pymeasure`` / ``driver: qcodes``), behind the guard.

The PyMeasure side is checked with PyMeasure's own protocol-test helper (``expected_protocol``: every
command the bridge makes the instrument send, and nothing else) and through a bench file against a
pyvisa-sim Keithley 2400; the QCoDeS side with the simulated instruments QCoDeS ships
(``DummyInstrument``). In each, a write the guard refuses never reaches the instrument.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pymeasure.instruments.keithley import Keithley2400
from pymeasure.test import expected_protocol

from labsat.bench import Bench, open_bench
from labsat.benchfile import ChannelLimits
from labsat.clock import VirtualClock
from labsat.drivers.bridge import BridgeOptions, BridgeVoltageSource
from labsat.drivers.pymeasure_bridge import PyMeasureAccessor
from labsat.errors import BenchFileError, InstrumentError, LimitViolation
from labsat.guard import SafetyGuard

HERE = Path(__file__).parent
KEITHLEY = "pymeasure.instruments.keithley.Keithley2400"
SMU_OPTIONS: dict[str, Any] = {
    "instrument": KEITHLEY,
    "setup": [{"set": "source_mode", "value": "voltage"}, {"set": "compliance_current", "value": 0.01}],
    "channels": [{"set": "source_voltage", "read": "source_voltage"}],
    "enable": [{"call": "enable_source"}],
    "disable": [{"call": "disable_source"}],
}
SMU_SIM = f"{HERE / 'fixtures' / 'pymeasure_keithley2400.yaml'}@sim"
LINE_ENDS = {"read_termination": "\n", "write_termination": "\n"}
"""How the pyvisa-sim instrument ends its lines (a real GPIB bus ends messages by EOI)."""
LIMITS = ChannelLimits(voltage=(0.0, 5.0), max_step=10.0, safe=0.0)


def test_pymeasure_commands_are_exactly_the_mapped_ones_and_a_refused_write_sends_nothing() -> None:
    protocol = [
        (":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS", None),  # Keithley2400's own __init__
        (":SOURCE:FUNCTION VOLT", None),
        (":SENSE:CURRENT:PROTECTION 0.01", None),
        (":SOURCE:VOLTAGE?", "0"),  # the guard learns where the output is before it plans anything
        ("OUTPUT 1", None),
        (":SOURCE:VOLTAGE 1.5", None),
        (":SOURCE:VOLTAGE?", "1.5"),
        ("OUTPUT 0", None),
    ]
    with expected_protocol(Keithley2400, protocol) as smu:
        device = BridgeVoltageSource("smu", smu, PyMeasureAccessor(), BridgeOptions.model_validate(SMU_OPTIONS))
        source = SafetyGuard(VirtualClock()).add_voltage_source("smu", device, ["v0"], [LIMITS])
        source.set({"v0": 1.5})
        with pytest.raises(LimitViolation, match="v0"):
            source.set({"v0": 7.5})  # above the bench's 5 V: refused before any command
        assert source.values().tolist() == [1.5]
        np.testing.assert_allclose(device.read_voltages(), [1.5])
        device.outputs_off()


@pytest.fixture(name="bridged")
def bridged_fixture(tmp_path: Path, data_dir: Path) -> Iterator[Bench]:
    """The default simulated bench plus a PyMeasure SMU, two QCoDeS gates and a QCoDeS meter."""
    bench = yaml.safe_load((HERE.parent / "config" / "sim-mrr.yaml").read_text())
    bench["devices"].update(
        smu={
            "driver": "pymeasure",
            "kind": "voltage_source",
            "address": "GPIB0::24::INSTR",
            "channels": {"prefix": "v", "count": 1},
            "limits": {"voltage": [0.0, 5.0], "max_step": 1.0, "safe": 0.0},
            "options": {**SMU_OPTIONS, "kwargs": {"visa_library": SMU_SIM, **LINE_ENDS}},
        },
        gates={
            "driver": "qcodes",
            "kind": "voltage_source",
            "channels": {"prefix": "g", "count": 2},
            "limits": {"voltage": [-1.0, 1.0], "max_step": 0.5, "safe": 0.0},
            "neighbour_max_diff": 1.5,
            "options": {
                "instrument": "qcodes.instrument_drivers.mock_instruments.DummyInstrument",
                "kwargs": {"gates": ["ch1", "ch2"]},
                "channels": [{"set": "ch1", "read": "ch1"}, {"set": "ch2", "read": "ch2"}],
            },
        },
        meter={
            "driver": "qcodes",
            "kind": "detector",
            "channels": {"prefix": "p", "count": 1},
            "options": {
                "instrument": "qcodes.instrument_drivers.mock_instruments.DummyInstrument",
                "kwargs": {"gates": ["power"]},
                "setup": [{"set": "power", "value": 0.25}],
                "channels": [{"read": "power"}],
                "integration_time_s": 0.001,
            },
        },
    )
    path = tmp_path / "bridged.yaml"
    path.write_text(yaml.safe_dump(bench))
    with open_bench(path, data_dir=data_dir) as opened:
        yield opened


def _instrument(bench: Bench, device: str) -> Any:
    return bench.source(device)._device.instrument


def test_bench_file_instruments_are_written_only_through_the_guard(bridged: Bench) -> None:
    smu, gates = _instrument(bridged, "smu"), _instrument(bridged, "gates")
    assert "MODEL 2400" in bridged.source("smu")._device.identity()
    bridged.set_channels({"smu.v0": 2.5, "gates.g0": 0.75, "gates.g1": -0.5})
    assert smu.source_voltage == pytest.approx(2.5) and smu.source_enabled
    assert (gates.ch1(), gates.ch2()) == (pytest.approx(0.75), pytest.approx(-0.5))
    refusals = ({"smu.v0": 6.0}, {"gates.g0": 1.2}, {"gates.g0": 1.0, "gates.g1": -1.0})  # limits, then neighbours
    for refused in refusals:
        with pytest.raises(LimitViolation):
            bridged.set_channels(refused)
    assert smu.source_voltage == pytest.approx(2.5)
    assert (gates.ch1(), gates.ch2()) == (pytest.approx(0.75), pytest.approx(-0.5))
    bridged.safe_state()
    assert smu.source_voltage == pytest.approx(0.0)
    assert (gates.ch1(), gates.ch2()) == (0.0, 0.0)


def test_a_qcodes_detector_reads_its_parameter(bridged: Bench) -> None:
    meter = bridged.device("meter")
    np.testing.assert_allclose(meter.read(), [0.25])
    assert meter.integration_time == pytest.approx(0.001)


def _bench_with(tmp_path: Path, device: dict[str, Any]) -> Path:
    bench = yaml.safe_load((HERE.parent / "config" / "sim-mrr.yaml").read_text())
    bench["devices"]["extra"] = device
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(bench))
    return path


def _gates(**options: Any) -> dict[str, Any]:
    return {
        "driver": "qcodes",
        "kind": "voltage_source",
        "channels": {"prefix": "g", "count": 1},
        "limits": {"voltage": [0.0, 1.0]},
        "options": {
            "instrument": "qcodes.instrument_drivers.mock_instruments.DummyInstrument",
            "kwargs": {"gates": ["ch1"]},
            "channels": [{"set": "ch1"}],
            **options,
        },
    }


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"instrument": "os.system"}, "devices.extra.options.instrument"),
        ({"instrument": "qcodes.instrument_drivers.mock_instruments.NoSuchThing"}, "devices.extra.options.instrument"),
        ({"channels": [{"set": "ch1"}, {"set": "ch2"}]}, "devices.extra.options.channels"),
        ({"channels": [{"read": "ch1"}]}, "devices.extra.options.channels.0.set"),
        ({"setup": [{"call": "reset", "set": "ch1"}]}, "devices.extra.options.setup.0"),
        ({"colour": "red"}, "devices.extra.options.colour"),
    ],
)
def test_a_malformed_bridge_entry_names_file_and_key(
    tmp_path: Path, data_dir: Path, options: dict[str, Any], key: str
) -> None:
    path = _bench_with(tmp_path, _gates(**options))
    with pytest.raises(BenchFileError) as refused:
        open_bench(path, data_dir=data_dir)
    assert refused.value.key == key and str(path) in str(refused.value)


def test_an_unknown_name_on_the_instrument_is_an_error_naming_device_and_name(tmp_path: Path, data_dir: Path) -> None:
    path = _bench_with(tmp_path, _gates(channels=[{"set": "ch1", "read": "ch9"}]))
    with pytest.raises(InstrumentError, match=r"extra .*ch9"):
        open_bench(path, data_dir=data_dir)  # the guard reads every channel at connect: ch9 fails there
    path = _bench_with(tmp_path, _gates(setup=[{"set": "source_voltag", "value": 1}]))
    with pytest.raises(InstrumentError, match="setup: source_voltag"):
        open_bench(path, data_dir=data_dir)


def test_pymeasure_refuses_a_property_it_does_not_have() -> None:
    init = [(":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS", None)]
    with expected_protocol(Keithley2400, init) as smu, pytest.raises(AttributeError, match="source_voltag"):
        PyMeasureAccessor().set(smu, "source_voltag", 1.0)  # plain assignment would add an attribute silently
