"""The safety guard: each rule rejects a violating write and the instrument receives nothing."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import BenchWriter, write_history

from labsat.bench import Bench, open_bench
from labsat.benchfile import ChannelLimits
from labsat.clock import VirtualClock
from labsat.errors import InstrumentError, LimitViolation, UnknownChannel
from labsat.guard import GuardedVoltageSource, SafetyGuard
from labsat.readout import clamp_inside


def _heater_limits(**changes: Any) -> Any:
    def edit(data: dict[str, Any]) -> None:
        data["devices"]["heaters"]["limits"].update(changes)

    return edit


def _assert_refused(bench: Bench, assignments: dict[str, float], fragment: str) -> None:
    before = len(write_history(bench, "heaters"))
    values = bench.source("heaters").values()
    with pytest.raises(LimitViolation, match=fragment) as caught:
        bench.set_channels(assignments)
    assert "nothing was written" in str(caught.value)
    assert len(write_history(bench, "heaters")) == before
    np.testing.assert_array_equal(bench.source("heaters").values(), values)
    np.testing.assert_allclose(bench.source("heaters").read_back(), values, atol=1e-3)


def test_voltage_above_maximum_is_refused(sim_bench: Bench) -> None:
    _assert_refused(sim_bench, {"heaters.h3": 4.5}, r"heaters\.h3 = 4\.5 refused: above the maximum 4 V")


def test_voltage_below_minimum_is_refused(sim_bench: Bench) -> None:
    _assert_refused(sim_bench, {"heaters.h0": -0.1}, "below the minimum 0 V")


def test_non_finite_value_is_refused(sim_bench: Bench) -> None:
    _assert_refused(sim_bench, {"heaters.h0": math.nan}, "not a finite number")


def test_current_limit(write_bench: BenchWriter, data_dir: Path) -> None:
    with open_bench(write_bench(_heater_limits(current_max_ma=2.0)), data_dir=data_dir) as bench:
        bench.set_channels({"heaters.h1": 2.0})  # 2 mA: allowed
        _assert_refused(bench, {"heaters.h1": 2.5}, r"current 2\.5 mA exceeds 2 mA")


def test_power_limit(write_bench: BenchWriter, data_dir: Path) -> None:
    with open_bench(write_bench(_heater_limits(power_max_mw=4.0)), data_dir=data_dir) as bench:
        bench.set_channels({"heaters.h1": 2.0})  # 4 mW: allowed
        _assert_refused(bench, {"heaters.h1": 2.1}, r"power 4\.41 mW exceeds 4 mW")


def test_bench_power_budget_counts_every_channel(write_bench: BenchWriter, data_dir: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["limits"]["heater_power_budget_mw"] = 20.0

    with open_bench(write_bench(edit), data_dir=data_dir) as bench:
        bench.set_channels({"heaters.h0": 3.0, "heaters.h1": 3.0})  # 18 mW
        _assert_refused(bench, {"heaters.h2": 1.5}, r"total heater power 20\.25 mW would exceed the bench budget 20")
        bench.set_channels({"heaters.h2": 1.4})  # 19.96 mW


def test_neighbour_difference(write_bench: BenchWriter, data_dir: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["devices"]["heaters"]["neighbour_max_diff"] = 1.0

    with open_bench(write_bench(edit), data_dir=data_dir) as bench:
        bench.set_channels({"heaters.h4": 1.0})
        _assert_refused(bench, {"heaters.h5": 2.5}, r"differs from neighbour h4 \(1 V\) by 1\.5 V")


def test_vector_write_with_one_bad_channel_writes_none(sim_bench: Bench) -> None:
    volts = np.full(64, 1.0)
    volts[37] = 9.0
    before = len(write_history(sim_bench, "heaters"))
    with pytest.raises(LimitViolation, match=r"heaters\.h37"):
        sim_bench.source("heaters").set_vector(volts)
    assert len(write_history(sim_bench, "heaters")) == before
    np.testing.assert_array_equal(sim_bench.source("heaters").read_back(), np.zeros(64))


def test_multi_device_write_is_checked_whole(sim_bench: Bench) -> None:
    before = len(write_history(sim_bench, "modulators"))
    with pytest.raises(LimitViolation, match=r"heaters\.h2"):
        sim_bench.set_channels({"modulators.m0": 1.0, "heaters.h2": 5.0})
    assert len(write_history(sim_bench, "modulators")) == before


def test_unknown_channel_is_named(sim_bench: Bench) -> None:
    with pytest.raises(UnknownChannel, match="heaters has no channel 'h99'"):
        sim_bench.set_channels({"heaters.h99": 1.0})
    with pytest.raises(UnknownChannel, match="no voltage source 'lasers'"):
        sim_bench.set_channels({"lasers.l0": 1.0})


def test_large_move_is_ramped_in_steps(sim_bench: Bench) -> None:
    heaters = sim_bench.source("heaters")
    start_time = sim_bench.clock.now()
    before = len(write_history(sim_bench, "heaters"))
    sim_bench.set_channels({"heaters.h9": 2.0, "heaters.h10": 0.6})  # max_step 0.5 V -> 4 steps
    writes = write_history(sim_bench, "heaters")[before:]
    h9 = [float(w.volts[list(w.positions).index(9)]) for w in writes]
    assert h9 == pytest.approx([0.5, 1.0, 1.5, 2.0])
    h10 = [float(w.volts[list(w.positions).index(10)]) for w in writes]
    assert h10 == pytest.approx([0.15, 0.3, 0.45, 0.6])
    assert sim_bench.clock.now() - start_time >= 3 * heaters.limits[9].step_delay
    steps = np.diff([0.0, *h9])
    assert np.all(steps <= heaters.limits[9].max_step + 1e-12)


def test_safe_state_after_exception_inside_a_job(sim_bench: Bench) -> None:
    sim_bench.set_channels({"heaters.h0": 3.0, "modulators.m1": 1.0})
    with pytest.raises(RuntimeError), sim_bench:
        raise RuntimeError("training step failed")
    np.testing.assert_array_equal(sim_bench.source("heaters").read_back(), np.zeros(64))
    np.testing.assert_array_equal(sim_bench.source("modulators").read_back(), np.zeros(8))
    h0 = [float(w.volts[list(w.positions).index(0)]) for w in write_history(sim_bench, "heaters")]
    after_fault = h0[h0.index(3.0) + 1 :]
    assert after_fault[:6] == pytest.approx([2.5, 2.0, 1.5, 1.0, 0.5, 0.0])  # ramped down in max_step steps
    assert after_fault[6:] == pytest.approx([0.0])  # then outputs off


def test_sigterm_drives_the_bench_to_its_safe_state(data_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from labsat.bench import builtin_bench_path, open_bench
        bench = open_bench(builtin_bench_path(), data_dir={str(data_dir)!r})
        bench.set_channels({{"heaters.h5": 2.5, "modulators.m2": 1.5}})
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        assert _wait_for_state(data_dir, heater=5, volts=2.5)  # the simulated instrument holds the value
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        process.kill()
    with open_bench(_builtin(), data_dir=data_dir) as observer:
        observer.hold_outputs()
        np.testing.assert_array_equal(observer.source("heaters").read_back(), np.zeros(64))
        np.testing.assert_array_equal(observer.source("modulators").read_back(), np.zeros(8))


def _wait_for_state(data_dir: Path, heater: int, volts: float, timeout_s: float = 5.0) -> bool:
    """Whether another process's simulated heater shows ``volts`` within ``timeout_s`` (its state file lags)."""
    # Read from the simulated instrument's state file: the other process owns the bench, so opening it
    # here would be refused (one owner per bench).
    state = data_dir / "sim-state" / "sim-mrr.heaters.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if json.loads(state.read_text())["volts"][heater] == pytest.approx(volts, abs=1e-3):
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return False


def _builtin() -> Path:
    from labsat.bench import builtin_bench_path

    return builtin_bench_path()


class FlakySource:
    """A 4-channel source whose writes and read-backs can be made to fail, applying part of a write first."""

    n_channels = 4

    def __init__(self) -> None:
        self.outputs = np.zeros(4)
        self.fail_write_after: int | None = None  # apply this many channels of the next write, then fail
        self.fail_read = False

    def identity(self) -> str:
        return "flaky"

    def write_voltages(self, positions: np.ndarray, volts: np.ndarray) -> None:
        count = len(positions) if self.fail_write_after is None else self.fail_write_after
        self.outputs[positions[:count]] = volts[:count]
        if self.fail_write_after is not None:
            self.fail_write_after = None
            raise InstrumentError("flaky: link dropped mid-write")

    def read_voltages(self) -> np.ndarray:
        if self.fail_read:
            raise InstrumentError("flaky: no reply")
        return self.outputs.copy()

    def outputs_off(self) -> None:
        self.outputs[:] = 0.0


def _flaky_guard(budget_mw: float | None = None) -> tuple[SafetyGuard, GuardedVoltageSource, FlakySource]:
    guard = SafetyGuard(VirtualClock(), heater_power_budget_mw=budget_mw)
    limits = ChannelLimits(voltage=(0.0, 4.0), resistance_ohm=1000.0, max_step=1.0)
    device = FlakySource()
    source = guard.add_voltage_source("flaky", device, ["c0", "c1", "c2", "c3"], [limits] * 4)
    return guard, source, device


def test_failed_write_leaves_the_cache_equal_to_the_instrument() -> None:
    _, source, device = _flaky_guard()
    device.fail_write_after = 2
    with pytest.raises(InstrumentError, match="mid-write"):
        source.set_vector([0.5, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(source.values(), [0.5, 0.5, 0.0, 0.0])
    source.set_vector([1.5, 1.5, 1.5, 1.5])  # ramps on from where the instrument really is
    np.testing.assert_array_equal(device.outputs, [1.5, 1.5, 1.5, 1.5])


def test_unknown_outputs_block_writes_until_the_safe_state() -> None:
    guard, source, device = _flaky_guard()
    source.set_vector([2.0, 2.0, 2.0, 2.0])
    device.fail_write_after, device.fail_read = 1, True
    with pytest.raises(InstrumentError):
        source.set_vector([3.0, 3.0, 3.0, 3.0])
    assert np.isnan(source.values()).all()
    with pytest.raises(InstrumentError, match=r"present output of c1, c2, c3 is unknown"):
        source.set({"c0": 1.0})
    guard.safe_state()  # writes the safe values in one step: the start is unknown, so it cannot ramp
    device.fail_read = False
    np.testing.assert_array_equal(device.outputs, np.zeros(4))


def test_budget_counts_unknown_outputs_at_their_maximum() -> None:
    guard, source, device = _flaky_guard(budget_mw=40.0)
    other = guard.add_voltage_source(
        "other",
        FlakySource(),
        ["d0", "d1", "d2", "d3"],
        [ChannelLimits(voltage=(0.0, 4.0), resistance_ohm=1000.0)] * 4,
    )
    device.fail_write_after, device.fail_read = 0, True
    with pytest.raises(InstrumentError):
        source.set_vector([1.0, 0.0, 0.0, 0.0])
    with pytest.raises(LimitViolation, match="bench budget 40 mW"):
        other.set({"d0": 1.0})  # 4 unknown channels at 16 mW each already exceed the budget


def test_clamp_inside_never_rounds_past_a_limit_in_float32() -> None:
    """2.2 has no exact float32 form and rounds up; the clamped value must still pass a float64 comparison."""
    values = torch.tensor([-3.0, 1.0, 5.0], dtype=torch.float32)
    clamped = clamp_inside(values, -0.1, 2.2)
    assert float(clamped.max()) <= 2.2 and float(clamped.min()) >= -0.1
    assert float(clamped[1]) == 1.0
    assert float(clamped.max()) > 2.2 - 1e-6  # one ulp inside, not a coarse margin
