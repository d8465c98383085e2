"""The bench state machine: a failed safe state or an unknown output latches ``faulted`` until an admin clears it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from service_helpers import TOKENS, WAIT_S, new_engine, serving, wait_for
from test_envelope import PlainSource
from typer.testing import CliRunner

from labsat.api.auth import Scope
from labsat.benchfile import ChannelLimits
from labsat.cli import app
from labsat.client import ApiError, LabsatClient
from labsat.clock import VirtualClock
from labsat.errors import BenchFaulted, InstrumentError
from labsat.guard import SafetyGuard
from labsat.jobs.model import JobState

runner = CliRunner()


class BrokenOff(PlainSource):
    """Its outputs cannot be switched off while ``broken``; reads fail while ``unreadable``."""

    broken = False
    unreadable = False

    def outputs_off(self) -> None:
        if self.broken:
            raise InstrumentError("output relay stuck")
        super().outputs_off()

    def read_voltages(self) -> np.ndarray:
        if self.unreadable:
            raise InstrumentError("no reply")
        return super().read_voltages()


def _guard() -> tuple[SafetyGuard, BrokenOff]:
    guard = SafetyGuard(VirtualClock())
    device = BrokenOff(2)
    guard.add_voltage_source("h", device, ["h0", "h1"], [ChannelLimits(voltage=(0.0, 4.0))] * 2)
    return guard, device


def test_a_failed_safe_state_latches_faulted_until_cleared() -> None:
    guard, device = _guard()
    source = guard.sources["h"]
    guard.occupy("job-1")
    assert guard.state == "busy"
    source.set_vector([2.0, 2.0])
    device.broken = True
    with pytest.raises(InstrumentError, match="relay stuck"):
        guard.halt("emergency stop")
    assert guard.state == "faulted" and "relay stuck" in (guard.faulted or "")
    guard.vacate()
    guard.release()  # what ends every job and every emergency stop: the fault stays
    assert guard.state == "faulted"
    with pytest.raises(BenchFaulted, match=r"faulted \(the safe state failed: output relay stuck\).*clear-fault"):
        source.set_vector([1.0, 1.0])
    with pytest.raises(BenchFaulted, match="relay stuck"):
        guard.occupy("job-2")
    assert device.writes[-1].tolist() == [0.0, 0.0]  # the safe state itself still wrote
    device.broken = False
    assert "relay stuck" in (guard.clear_fault() or "")
    assert guard.state == "idle"
    source.set_vector([1.0, 1.0])
    assert device.outputs.tolist() == [1.0, 1.0]


def test_an_output_in_an_unknown_state_latches_faulted() -> None:
    guard, device = _guard()
    source = guard.sources["h"]
    device.unreadable = True
    with pytest.raises(InstrumentError):
        source.read_back()
    assert guard.state == "idle"  # a failed read alone changes nothing written
    source._values[:] = np.nan  # as a failed write leaves them (see test_guard)
    source.present()
    assert guard.state == "faulted" and "unknown state" in (guard.faulted or "")
    device.unreadable = False
    guard.safe_state()  # succeeds now, and still only the admin clears the fault
    assert guard.state == "faulted"


def test_faulted_bench_over_rest_and_cli(data_dir: Path) -> None:
    engine = new_engine(data_dir)
    with serving(engine) as url, LabsatClient(url, TOKENS[Scope.OPERATE], timeout=WAIT_S) as lab:
        bench = engine.worker("sim-mrr").bench
        heaters = bench.sources["heaters"]._device
        working_off = heaters.outputs_off

        def stuck() -> None:
            raise InstrumentError("heater relay stuck")

        heaters.outputs_off = stuck  # type: ignore[method-assign]
        job = lab.submit("steps", {"steps": 1})
        ended = lab.wait(job.id, timeout=WAIT_S)
        assert ended.state is JobState.FAILED and "safe state failed" in (ended.error or "")
        (summary,) = lab.benches()
        assert summary.state == "faulted" and "heater relay stuck" in (summary.fault or "")
        assert lab.bench("sim-mrr").state == "faulted"

        with pytest.raises(ApiError, match="heater relay stuck") as refused:
            lab.submit("steps", {"steps": 1})
        assert refused.value.status == 409
        with pytest.raises(ApiError) as manual:
            lab.set_channels("sim-mrr", {"heaters.h0": 1.0})
        assert manual.value.status == 409 and "faulted" in str(manual.value)
        lab.resume(job.id)  # queued again: the worker refuses to start it, naming the fault
        wait_for(lambda: lab.job(job.id).state is JobState.FAILED, what="the resumed job to be refused")
        assert "faulted (the safe state failed: heater relay stuck)" in (lab.job(job.id).error or "")

        operate = runner.invoke(app, ["clear-fault", "sim-mrr", "--url", url, "--token", TOKENS[Scope.OPERATE]])
        assert operate.exit_code != 0 and "403" in operate.output
        assert lab.bench("sim-mrr").state == "faulted"

        heaters.outputs_off = working_off  # type: ignore[method-assign]
        admin = runner.invoke(app, ["clear-fault", "sim-mrr", "--json", "--url", url, "--token", TOKENS[Scope.ADMIN]])
        assert admin.exit_code == 0, admin.output
        answer = json.loads(admin.stdout)
        assert answer["state"] == "idle" and "heater relay stuck" in answer["cleared"]
        again = lab.submit("steps", {"steps": 1})
        assert lab.wait(again.id, timeout=WAIT_S).state is JobState.SUCCEEDED


def test_devices_shows_the_bench_state(data_dir: Path) -> None:
    listed = runner.invoke(app, ["devices", "--json", "--data-dir", str(data_dir)])
    assert listed.exit_code == 0, listed.output
    described = json.loads(listed.stdout)
    assert (described["state"], described["fault"]) == ("idle", None)
    table = runner.invoke(app, ["devices", "--data-dir", str(data_dir)])
    assert "idle" in table.stdout
