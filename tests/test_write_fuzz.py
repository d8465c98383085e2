"""Random write attempts through every path that writes, checked by a recorder below the guard.

Each path gets hypothesis-drawn requests, in range and out of it, on a bench whose envelope is tighter than
its voltage box (a 2.2 V box, 1.5 mW per heater, modulators with their own power cap, a 60 mW bench budget
for heaters and modulators together, 1 V between neighbouring heaters, 0.5 V ramp steps). The recorder
(:mod:`write_recorder`) checks every raw write against the bench file: no value outside its limits, no
bench budget exceeded at any moment, no single move over ``max_step``, no refused request that wrote
anything and no accepted one that stopped short. The counts are printed (``pytest -s``) and recorded in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import importlib
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from conftest import BenchWriter
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_helpers import auth, token_table
from test_d2nn_system import small_d2nn
from test_envelope_training import _true_layer
from typer.testing import CliRunner
from write_recorder import Attempt, RawWriteRecorder

from labsat.api.app import create_app
from labsat.api.auth import Scope
from labsat.bench import Bench, open_bench
from labsat.calibration import CalibrationOptions, calibrate
from labsat.datasets import load_dataset
from labsat.jobs.engine import JobEngine
from labsat.readout import QueryStats, measure_batch
from labsat.store import Store
from labsat.training.config import TrainConfig
from labsat.training.loop import train

HEATERS, MODULATORS = 64, 8
FUZZ = settings(derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
VALUES = st.one_of(
    st.floats(-0.5, 2.6, allow_nan=False),
    st.sampled_from([0.0, 1.0, 1.2247, 1.2248, 2.2, 2.2000000477, -1e-9, math.nan, math.inf]),
)
"""Heater and modulator volts: mostly near the limits that bind (1.2247 V is 1.5 mW at 1 kΩ), some outside."""


def _tight(data: dict[str, Any]) -> None:
    heaters, modulators = data["devices"]["heaters"], data["devices"]["modulators"]
    heaters["limits"].update(voltage=[0.0, 2.2], power_max_mw=1.5, max_step=0.5)
    heaters["neighbour_max_diff"] = 1.0
    modulators["limits"].update(resistance_ohm=2000.0, power_max_mw=2.0)  # 2.0 V at most: tighter than the box
    data["limits"]["heater_power_budget_mw"] = 60.0


@pytest.fixture
def tight_bench(write_bench: BenchWriter) -> Path:
    return write_bench(_tight)


@pytest.fixture
def bench(tight_bench: Path, data_dir: Path) -> Iterator[Bench]:
    with open_bench(tight_bench, data_dir=data_dir) as opened:
        yield opened


def _assignments() -> st.SearchStrategy[dict[str, float]]:
    channels = st.one_of(
        st.integers(0, HEATERS - 1).map(lambda i: f"heaters.h{i}"),
        st.integers(0, MODULATORS - 1).map(lambda i: f"modulators.m{i}"),
    )
    return st.dictionaries(channels, VALUES, min_size=1, max_size=8)


def _check(*recorders: RawWriteRecorder) -> None:
    """Print the counts of every recorder of one path, summed, and fail on any violation."""
    counts = sum((recorder.counts for recorder in recorders), start=Counter())
    violations = [line for recorder in recorders for line in recorder.violations]
    print("\n" + "\n".join(f"{key}: {value}" for key, value in sorted(counts.items())))
    print(f"violations: {len(violations)}")
    assert violations == [], violations[:5]


def test_bench_channel_sets(bench: Bench) -> None:
    """What ``labsat set`` and the service do with a parsed request: ``Bench.set_channels``, multi-device."""
    recorder = RawWriteRecorder(bench)

    @settings(FUZZ, max_examples=3000)
    @given(_assignments())
    def attempt(values: dict[str, float]) -> None:
        tried, _ = recorder.run("channel set", lambda: bench.set_channels(values))
        if tried.accepted:
            recorder.check_targets(tried, values)

    attempt()
    assert recorder.counts["channel set accepted"] > 300 and recorder.counts["channel set refused"] > 300
    _check(recorder)


def test_rest_channel_sets(tight_bench: Path, data_dir: Path) -> None:
    engine = JobEngine(Store(data_dir), [tight_bench])
    with TestClient(create_app(engine, token_table())) as client:
        bench = engine.worker("sim-mrr").bench
        recorder = RawWriteRecorder(bench)
        operate = auth(Scope.OPERATE)

        @settings(FUZZ, max_examples=1500)
        @given(_assignments())
        def attempt(values: dict[str, float]) -> None:
            body = {"values": {k: (str(v) if not math.isfinite(v) else v) for k, v in values.items()}}
            with recorder.attempt("REST") as tried:
                answer = client.put("/api/benches/sim-mrr/channels", json=body, headers=operate)
            if answer.status_code == 200:
                recorder.reached(tried, values)
            else:
                assert answer.status_code in (409, 422), answer.text
                recorder.refused(tried, answer.text)

        attempt()
    assert recorder.counts["REST accepted"] > 100 and recorder.counts["REST refused"] > 100
    _check(recorder)


def test_cli_channel_sets(tight_bench: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``labsat set`` in-process: each invocation opens the bench anew, with a recorder on its devices."""
    cli_app = importlib.import_module("labsat.cli.app")  # the module; the package's ``app`` is the Typer app
    recorders: list[RawWriteRecorder] = []
    original = cli_app.open_bench

    def recorded(*args: Any, **kwargs: Any) -> Bench:
        opened = original(*args, **kwargs)
        recorders.append(RawWriteRecorder(opened))
        return opened

    monkeypatch.setattr(cli_app, "open_bench", recorded)
    runner = CliRunner()

    @settings(FUZZ, max_examples=40)
    @given(_assignments())
    def attempt(values: dict[str, float]) -> None:
        args = ["set", "--bench", str(tight_bench), *(f"{k}={v}" for k, v in values.items())]
        result = runner.invoke(cli_app.app, args)
        recorder = recorders[-1]  # this invocation's bench
        tried = Attempt("CLI", writes=recorder.counts["raw voltage writes"])
        recorder.counts["CLI attempts"] += 1
        if result.exit_code == 0:
            recorder.reached(tried, values)
        else:
            assert result.exit_code == 2 and "Traceback" not in result.output, result.output
            recorder.refused(tried, result.output)

    attempt()
    _check(*recorders)


def test_streamed_batches(bench: Bench) -> None:
    recorder = RawWriteRecorder(bench)
    modulators = bench.source("modulators")
    detectors = bench.detectors["detectors"]
    drive = st.one_of(st.floats(0.0, 2.0), VALUES)  # half of them inside, to stream some batches whole
    rows = st.lists(st.lists(drive, min_size=MODULATORS, max_size=MODULATORS), min_size=1, max_size=6)

    @settings(FUZZ, max_examples=1500)
    @given(rows, st.integers(0, 3))
    def attempt(batch: list[list[float]], heat: int) -> None:
        bench.source("heaters").set_vector(np.full(HEATERS, 0.3 * heat))  # the heaters' share of the budget varies
        readings = (modulators, detectors, bench.streamer, torch.tensor(batch), bench.clock, QueryStats())
        recorder.run("streamed batch", lambda: measure_batch(*readings))

    attempt()
    assert recorder.counts["streamed batch accepted"] > 100 and recorder.counts["streamed batch refused"] > 100
    _check(recorder)


def test_projected_writes_are_accepted_exactly(bench: Bench) -> None:
    """The guard's nearest allowed point, as training and calibration write it: never refused, written as is."""
    recorder = RawWriteRecorder(bench)
    heaters = bench.source("heaters")
    vectors = st.lists(st.floats(-1.0, 3.0, allow_nan=False), min_size=HEATERS, max_size=HEATERS)

    @settings(FUZZ, max_examples=1000)
    @given(vectors, st.sampled_from([torch.float32, torch.float64]))
    def attempt(values: list[float], dtype: torch.dtype) -> None:
        allowed = heaters.project(torch.tensor(values, dtype=dtype))
        with recorder.attempt("projected write") as tried:
            heaters.set_vector(allowed)
        expected = {f"heaters.h{i}": float(v) for i, v in enumerate(torch.as_tensor(allowed).double())}
        recorder.reached(tried, expected)

    attempt()
    _check(recorder)


@pytest.mark.parametrize("ascent", ["twin", "spsa"])
def test_training_device_writes(bench: Bench, ascent: str) -> None:
    """PAT+SAT with a large ρ: the perturbed point and (SPSA) the device probes press against every limit."""
    recorder = RawWriteRecorder(bench)
    config = TrainConfig(
        method="pat+sat",
        ascent=ascent,
        epochs=1,
        hidden=(8,),
        batch_size=32,
        deploy_steps=10,
        rho=2.0,
        seed=5,
        validation_fraction=0.0,  # every one of iris's 112 training samples drives the device
    )
    with recorder.attempt("training run"):
        result = train(config, _true_layer(bench), load_dataset("iris", seed=0))
    assert len(result.steps) == 4
    assert recorder.counts["raw voltage writes"] > 10
    _check(recorder)


def test_calibration_plans(bench: Bench, data_dir: Path) -> None:
    recorder = RawWriteRecorder(bench)
    options = CalibrationOptions(sweep_points=24, heater_maps=10, validation_maps=4)
    with recorder.attempt("calibration"):
        calibrate(bench, Store(data_dir), options=options)
    assert recorder.counts["raw voltage writes"] > 100
    _check(recorder)


def test_slm_frames(tmp_path: Path, data_dir: Path) -> None:
    data = small_d2nn()
    for mask in data["system"]["masks"]:
        data["devices"][mask]["frame_limits"] = {"gray": [10, 240], "safe_gray": 10}
    path = tmp_path / "d2nn.yaml"
    path.write_text(yaml.safe_dump(data))
    with open_bench(path, data_dir=data_dir) as bench:
        recorder = RawWriteRecorder(bench)
        masks = [bench.slms[name] for name in data["system"]["masks"]]
        levels = st.integers(0, 255)

        @settings(FUZZ, max_examples=3000)
        @given(st.integers(0, len(masks) - 1), levels, levels, st.integers(0, 31), st.integers(0, 31))
        def attempt(which: int, base: int, odd: int, row: int, col: int) -> None:
            frame = np.full((32, 32), base, dtype=np.int64)
            frame[row, col] = odd
            recorder.run("SLM frame", lambda: masks[which].show(frame))

        attempt()
    assert recorder.counts["SLM frame accepted"] > 100 and recorder.counts["SLM frame refused"] > 100
    _check(recorder)


def test_a_multi_device_write_never_passes_through_an_over_budget_moment(write_bench: BenchWriter) -> None:
    """Heater h0 rises while modulator m0 falls, ending exactly at the budget: the falling device goes first."""

    def edit(data: dict[str, Any]) -> None:
        _tight(data)
        data["devices"]["heaters"]["limits"].update(power_max_mw=None, max_step=None)
        data["devices"]["heaters"]["neighbour_max_diff"] = None
        data["limits"]["heater_power_budget_mw"] = 2.5

    with open_bench(write_bench(edit)) as bench:
        bench.set_channels({"heaters.h0": 0.5, "modulators.m0": 2.0})  # 0.25 + 2.0 mW
        recorder = RawWriteRecorder(bench)
        with recorder.attempt("channel set") as tried:
            bench.set_channels({"heaters.h0": 1.2, "modulators.m0": 1.0})  # 1.44 + 0.5 mW: h0 first would be 3.44
        recorder.reached(tried, {"heaters.h0": 1.2, "modulators.m0": 1.0})
    _check(recorder)


def test_light_source_settings(write_bench: BenchWriter) -> None:
    def with_laser(data: dict[str, Any]) -> None:
        _tight(data)
        data["devices"]["laser"] = {
            "driver": "sim",
            "kind": "light_source",
            "light_limits": {"power_mw": [0.1, 2.0], "wavelength_nm": [1540.0, 1560.0]},
            "options": {"nominal_power_mw": 1.0},
        }

    powers = st.one_of(st.none(), st.floats(-0.5, 2.5), st.sampled_from([0.1, 2.0, 2.0000001, math.nan, math.inf]))
    wavelengths = st.one_of(st.none(), st.floats(1535.0, 1565.0), st.sampled_from([1540.0, 1560.0, math.nan]))
    with open_bench(write_bench(with_laser)) as bench:
        laser = bench.lights["laser"]
        recorder = RawWriteRecorder(bench)

        @settings(FUZZ, max_examples=1000)
        @given(powers, wavelengths, st.sampled_from([None, True, False]))
        def attempt(power_mw: float | None, wavelength_nm: float | None, enabled: bool | None) -> None:
            tried, state = recorder.run(
                "light source", lambda: laser.set(power_mw=power_mw, wavelength_nm=wavelength_nm, enabled=enabled)
            )
            if not tried.accepted:
                return
            asked = {"power_mw": power_mw, "wavelength_nm": wavelength_nm, "enabled": enabled}
            for key, value in asked.items():
                if value is not None and getattr(state, key) != value:
                    recorder.violations.append(f"light source: {key} reads {getattr(state, key)!r}, not {value!r}")

        attempt()
    assert recorder.counts["light source accepted"] > 100 and recorder.counts["light source refused"] > 100
    _check(recorder)
