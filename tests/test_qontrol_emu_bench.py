"""config/emu-mrr.yaml: 64 heaters on an emulated chain of eight Q8iv modules, driven end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli_json

from labsat.bench import Bench, open_bench
from labsat.errors import InstrumentError
from labsat.simulators.emulators.qontrol import QontrolEmulator

BENCH = str(Path(__file__).parents[1] / "config" / "emu-mrr.yaml")
CHAIN = ", ".join(f"Q8iv-{k:04d}" for k in range(1, 9))


@pytest.fixture
def emu_bench(data_dir: Path) -> Iterator[Bench]:
    with open_bench(BENCH, data_dir=data_dir) as bench:
        yield bench
    bench.shared["emulators"].close()


def test_devices_set_and_safe_through_the_chain() -> None:
    heaters = {d["name"]: d for d in cli_json("devices", "--bench", BENCH)["devices"]}["heaters"]
    assert heaters["identity"] == CHAIN
    assert len(heaters["channels"]) == 64
    assert cli_json("set", "heaters.h3=1.5", "heaters.h12=2.25", "--bench", BENCH)["set"] == {
        "heaters.h3": 1.5,
        "heaters.h12": 2.25,
    }
    safe = cli_json("safe", "--bench", BENCH)["safe"]
    assert safe["heaters"] == [0.0] * 64


def test_calibrate_runs_through_the_chain() -> None:
    record = cli_json("calibrate", "--bench", BENCH, "--sweep-points", "16")
    assert record["complete"] is True
    assert [p["procedure"] for p in record["procedures"]] == [
        "detectors",
        "modulators",
        "rings",
        "crosstalk",
        "heaters",
        "validation",
    ]


def test_the_bench_limits_reach_every_module_and_a_write_spans_modules(emu_bench: Bench) -> None:
    emulator = emu_bench.shared["emulators"].emulator("heaters")
    assert emulator.vmax.tolist() == [4.0] * 64
    assert emulator.imax.tolist() == [4.5] * 64
    heaters = emu_bench.source("heaters")
    target = np.zeros(64)
    target[4:12] = 1.0  # channels of modules 1 and 2
    lines = emulator.lines
    heaters.set_vector(target)
    np.testing.assert_array_equal(emulator.volts, target)
    assert emulator.lines - lines <= 8 * 2  # a line per changed channel at most, ramps included: no read-back re-sent


def test_a_multi_module_write_then_an_over_voltage_write_is_reported_as_refused(emu_bench: Bench) -> None:
    emulator = emu_bench.shared["emulators"].emulator("heaters")
    heaters = emu_bench.source("heaters")
    target = np.zeros(64)
    target[:16] = np.linspace(0.5, 2.0, 16)  # two whole modules: one vvec line each
    heaters.set_vector(target)
    np.testing.assert_allclose(emulator.volts[:16], target[:16])
    emulator.handle("vmax11=1.0")  # lowered at the module, behind labsat's back
    with pytest.raises(InstrumentError, match=r"'v11=2' was refused: E01:11, over-voltage on channel 11"):
        heaters.set({"h11": 2.0})
    assert emulator.volts[11] == 1.0  # the module clamped it...
    assert heaters.values()[11] == pytest.approx(1.0, abs=0.01)  # ...and the guard knows where it is


def _record(emulator: QontrolEmulator) -> list[str]:
    """Every line the emulated chain receives from now on."""
    received: list[str] = []
    handle = emulator.handle

    def recording(line: str) -> str | None:
        received.append(line)
        return handle(line)

    emulator.handle = recording  # type: ignore[method-assign]
    return received


def test_a_power_cycle_announced_by_e90_restores_limits_and_outputs(emu_bench: Bench) -> None:
    emulator = emu_bench.shared["emulators"].emulator("heaters")
    heaters = emu_bench.source("heaters")
    heaters.set({"h0": 2.0, "h9": 1.0})
    emulator.power_cycle()  # the USB link stays up; the modules say E90 on their own
    assert emulator.vmax[0] == 12.0 and emulator.volts[0] == 0.0
    np.testing.assert_allclose(heaters.read_back()[[0, 9]], [2.0, 1.0])
    assert emulator.vmax.tolist() == [4.0] * 64 and emulator.imax.tolist() == [4.5] * 64
    assert emulator.volts[0] == 2.0 and emulator.volts[9] == 1.0


def test_a_reconnect_sends_no_setting_when_the_outputs_held(emu_bench: Bench) -> None:
    emulator = emu_bench.shared["emulators"].emulator("heaters")
    heaters = emu_bench.source("heaters")
    heaters.set({"h0": 2.0, "h9": 1.0})
    received = _record(emulator)
    emulator.faults.cut = 1  # a USB glitch: the modules kept everything
    np.testing.assert_allclose(heaters.read_back()[[0, 9]], [2.0, 1.0])
    assert not [line for line in received if "=" in line]  # no vmax, imax, v or vvec line
    assert "idall?" in received  # it did reconnect
