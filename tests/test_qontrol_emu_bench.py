"""config/emu-mrr.yaml: 64 heaters on an emulated chain of eight Q8iv modules, driven end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli_json

from labsat.bench import Bench, open_bench
from labsat.errors import Halted, InstrumentError
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
    with pytest.raises(InstrumentError, match=r"'v11=2' was refused: E01:11, over-voltage on channel 11 \(h11\)$"):
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


# -- reconnect and power cycle: the guard decides what comes back ------------------------------------


def _outputs(emulator: QontrolEmulator) -> list[np.ndarray]:
    """The chain's outputs after every line it receives from now on (the raw instrument, below the guard)."""
    states: list[np.ndarray] = []
    handle = emulator.handle

    def recording(line: str) -> str | None:
        reply = handle(line)
        states.append(emulator.volts.copy())
        return reply

    emulator.handle = recording  # type: ignore[method-assign]
    return states


def _largest_rise(start: np.ndarray, states: list[np.ndarray]) -> float:
    return float(np.diff(np.vstack([start, *states]), axis=0).max()) if states else 0.0


def test_an_emergency_stop_after_a_power_cycle_never_brings_the_old_operating_point_back(emu_bench: Bench) -> None:
    emulator = emu_bench.shared["emulators"].emulator("heaters")
    heaters = emu_bench.source("heaters")
    heaters.set({"h0": 2.0, "h1": 2.0, "h9": 1.0})
    emulator.power_cycle()  # the modules restart (outputs 0 V, E90 on the line) just before the stop
    start = emulator.volts.copy()
    states = _outputs(emulator)
    emu_bench.guard.halt("emergency stop")  # its safe ramp meets the E90: reconnect, limits, no restore
    assert states, "the safe state reached the instrument"
    assert _largest_rise(start, states) == 0.0  # no output rose at any line while halted
    np.testing.assert_array_equal(emulator.volts, 0.0)
    assert emulator.vmax.tolist() == [4.0] * 64  # the limits did come back
    with pytest.raises(Halted):
        heaters.set({"h0": 0.5})


def test_a_power_cycle_during_the_emergency_stops_safe_ramp_does_not_restore(emu_bench: Bench) -> None:
    emulator = emu_bench.shared["emulators"].emulator("heaters")
    heaters = emu_bench.source("heaters")
    heaters.set_vector(np.r_[np.full(8, 2.0), np.zeros(56)])  # module 0 at 2 V: a 4-step safe ramp
    cycles: list[float] = []

    class PowerCycleAtTheFirstStep:
        """The guard's clock (not the chip's): the modules restart between two steps of the safe ramp."""

        def now(self) -> float:
            return emu_bench.clock.now()

        def sleep(self, seconds: float) -> None:
            if not cycles:
                cycles.append(self.now())
                emulator.power_cycle()
            emu_bench.clock.sleep(seconds)

    emu_bench.guard.clock = PowerCycleAtTheFirstStep()
    start = emulator.volts.copy()
    states = _outputs(emulator)
    emu_bench.guard.halt("emergency stop")
    assert cycles, "the power cycle happened during the safe ramp"
    assert _largest_rise(start, states) == 0.0  # the old code ramped back to 1.5 V here, before the safe values
    np.testing.assert_array_equal(emulator.volts, 0.0)
    np.testing.assert_array_equal(heaters.values(), 0.0)


def test_while_halted_a_reconnect_after_a_power_cycle_writes_no_output(emu_bench: Bench) -> None:
    emulator = emu_bench.shared["emulators"].emulator("heaters")
    heaters = emu_bench.source("heaters")
    heaters.set({"h0": 2.0})
    emu_bench.guard.halt("emergency stop")
    emulator.power_cycle()
    received = _record(emulator)
    np.testing.assert_array_equal(heaters.read_back(), 0.0)  # the read reconnects (E90)
    assert "idall?" in received
    assert not [line for line in received if line.startswith(("v", "V")) and "=" in line and "max" not in line]
    emu_bench.guard.release()
    np.testing.assert_array_equal(heaters.read_back(), 0.0)  # nothing was left over to restore on release


def test_a_normal_reconnect_restores_through_the_guards_ramp_on_the_bench_clock(emu_bench: Bench) -> None:
    emulator = emu_bench.shared["emulators"].emulator("heaters")
    heaters = emu_bench.source("heaters")
    target = np.zeros(64)
    target[:8] = [2.0, 3.0, 2.5, 0.0, 0.0, 1.0, 0.0, 0.0]
    target[9] = 1.0
    heaters.set_vector(target)
    emulator.power_cycle()
    validated: list[np.ndarray] = []
    validate = emu_bench.guard.validate
    emu_bench.guard.validate = lambda source, t, pending=None: (
        validated.append(t.copy()),
        validate(source, t, pending),
    )[1]  # type: ignore[method-assign]
    start, began = emulator.volts.copy(), emu_bench.clock.now()
    states = _outputs(emulator)
    np.testing.assert_allclose(heaters.read_back(), target, atol=0.01)
    np.testing.assert_array_equal(emulator.volts, target)
    written = [s for k, s in enumerate(states) if k == 0 or not np.array_equal(s, states[k - 1])]
    steps = np.abs(np.diff(np.vstack([start, *written]), axis=0))
    assert steps.max() <= 0.5 + 1e-9  # the bench's max_step, never one jump to 3 V
    assert len(written) >= 6  # 3 V in 0.5 V steps
    assert any(np.array_equal(t, target) for t in validated)  # the whole restore target met every rule first
    assert emu_bench.clock.now() - began >= 5 * 0.001  # step_delay between the steps, on the bench clock
    untouched = np.flatnonzero(target == 0)
    assert all(np.array_equal(s[untouched], start[untouched]) for s in states)  # channels that held: no write


def test_a_restore_the_budget_refuses_leaves_the_outputs_where_the_power_cycle_put_them(emu_bench: Bench) -> None:
    emulator = emu_bench.shared["emulators"].emulator("heaters")
    heaters = emu_bench.source("heaters")
    heaters.set({"h0": 3.0, "h20": 3.0})  # 9 mW each
    emulator.power_cycle()
    emu_bench.guard.heater_power_budget_mw = 10.0  # lowered since: both cannot come back together
    np.testing.assert_array_equal(heaters.read_back(), 0.0)
    np.testing.assert_array_equal(emulator.volts, 0.0)
    heaters.set({"h0": 3.0})  # the guard's picture is the real one: the next write ramps up from 0 V
    assert emulator.volts[0] == 3.0 and emulator.volts[20] == 0.0
