"""The plain SCPI drivers against pyvisa-sim instruments (tests/fixtures/scpi_instruments.yaml, ``@sim``).

These go through the whole production path (entry-point factory, VISA transport, link, driver); only
the instrument is a pyvisa-sim definition. pyvisa-sim parses no compound messages, hence
``compound: false``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from labsat.benchfile import DeviceSpec, load_bench_file
from labsat.clock import VirtualClock
from labsat.registry import BenchContext, driver_factory

HERE = Path(__file__).parent
LIBRARY = f"{HERE / 'fixtures' / 'scpi_instruments.yaml'}@sim"


@pytest.fixture(scope="module")
def context() -> BenchContext:
    path = HERE.parent / "config" / "sim-mrr.yaml"  # any bench: these drivers only need the context's type
    return BenchContext(load_bench_file(path), str(path), VirtualClock(), torch.device("cpu"))


def _open(context: BenchContext, driver: str, kind: str, address: str, **spec: Any) -> Any:
    options = {"visa_library": LIBRARY, "compound": False, "timeout_s": 0.5, **spec.pop("options", {})}
    device_spec = DeviceSpec(driver=driver, kind=kind, address=address, options=options, **spec)
    return driver_factory(driver)(driver, device_spec, context)


def test_scpi_dac_pushes_limits_writes_and_reads_back(context: BenchContext) -> None:
    dac = _open(
        context,
        "scpi_dac",
        "voltage_source",
        "TCPIP::sim-dac::5025::SOCKET",
        channels={"count": 2, "first": 1},
        limits={"voltage": (0.0, 2.2)},
    )
    assert dac.identity() == "LABSAT,SIM-DAC2,0001,1.0"
    assert [dac.get("limit_high", ch=ch) for ch in (1, 2)] == [2.2, 2.2]
    assert [dac.get("limit_state", ch=ch) for ch in (1, 2)] == [True, True]
    assert [dac.get("output", ch=ch) for ch in (1, 2)] == [False, False]
    dac.write_voltages(np.array([0, 1]), np.array([0.25, 1.5]))
    assert [dac.get("output", ch=ch) for ch in (1, 2)] == [True, True]
    np.testing.assert_allclose(dac.read_voltages(), [0.25, 1.5])
    dac.outputs_off()
    assert [dac.get("output", ch=ch) for ch in (1, 2)] == [False, False]
    np.testing.assert_allclose(dac.read_voltages(), [0.0, 0.0])
    dac.close()


def test_scpi_daq_reads_every_channel_in_one_query(context: BenchContext) -> None:
    daq = _open(
        context,
        "scpi_daq",
        "detector",
        "TCPIP::sim-daq::5025::SOCKET",
        channels={"count": 4, "first": 101},
        options={"integration_time_s": 0.002},
    )
    np.testing.assert_allclose(daq.read(), [0.1, 0.2, 0.3, 0.4])
    assert daq.integration_time == 0.002
    daq.close()


def test_thorlabs_pm_sets_the_wavelength_and_reads_watts(context: BenchContext) -> None:
    meter = _open(
        context,
        "thorlabs_pm",
        "detector",
        "USB0::0x1313::0x8072::P2000343::INSTR",
        channels={"count": 1},
        options={"wavelength_nm": 1310, "average_count": 10},
    )
    assert meter.identity().startswith("Thorlabs,PM100USB")
    assert meter.get("unit") == "W"  # the definition starts in dBm
    assert meter.get("wavelength_nm") == 1310.0
    assert meter.get("auto_range") is True
    assert meter.read().tolist() == [1.25e-3]
    assert meter.integration_time == pytest.approx(0.03)
    meter.close()


def test_keithley_sets_compliance_sources_and_switches_off(context: BenchContext) -> None:
    smu = _open(
        context,
        "keithley24xx",
        "voltage_source",
        "GPIB0::24::INSTR",
        channels={"count": 1},
        limits={"voltage": (0.0, 5.0)},
        options={"compliance_a": 0.002},
    )
    assert smu.get("compliance_a") == 0.002
    assert smu.get("ovp_v") == 20.0
    assert smu.get("auto_off") is False  # the definition starts with auto output-off on
    assert smu.get("elements") == "VOLT,CURR,STAT"
    smu.write_voltages(np.array([0]), np.array([1.0]))
    assert smu.get("output") is True
    assert smu.read_voltages().tolist() == [1.0]
    assert smu.measure() == (1.0, 1e-3)
    smu.outputs_off()
    assert smu.get("output") is False
    assert smu.read_voltages().tolist() == [0.0]
    smu.close()
