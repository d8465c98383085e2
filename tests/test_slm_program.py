"""SLM programs are all or nothing across masks, and every gray level labsat produces lies inside frame_limits.gray."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from test_d2nn_system import CPU, chip_of, small_d2nn, smooth_phases

from labsat.bench import Bench, open_bench
from labsat.benchfile import FrameLimits, parse_bench
from labsat.calibration.slm_lut import calibrate_slm_luts
from labsat.clock import VirtualClock
from labsat.drivers.slm import MemorySink, ScreenSLM
from labsat.errors import Halted, LimitViolation, RefusedRequest
from labsat.guard import GuardedSLM, SafetyGuard, show_program
from labsat.physics.slm import PhaseLUT
from labsat.systems.d2nn import D2NNSystem

GRAY = (20, 200)


def _two_slms() -> tuple[SafetyGuard, list[GuardedSLM], list[MemorySink]]:
    guard = SafetyGuard(VirtualClock())
    sinks = [MemorySink(), MemorySink()]
    slms = [
        guard.add_slm(
            f"mask{i + 1}", ScreenSLM(f"mask{i + 1}", sink, (4, 6), 0.1), FrameLimits(gray=GRAY, safe_gray=20)
        )
        for i, sink in enumerate(sinks)
    ]
    return guard, slms, sinks


def test_a_program_with_one_bad_mask_changes_no_slm() -> None:
    _, slms, sinks = _two_slms()
    first = [np.full((4, 6), 50), np.full((4, 6), 60)]
    show_program(list(zip(slms, first, strict=True)))
    assert [len(sink.frames) for sink in sinks] == [1, 1]
    bad = np.full((4, 6), 70)
    bad[2, 3] = 201  # one pixel of the second mask above the allowed range
    with pytest.raises(LimitViolation, match=r"mask2\.pixel \(2, 3\) = 201 refused: above the highest gray level 200"):
        show_program([(slms[0], np.full((4, 6), 80)), (slms[1], bad)])
    assert [len(sink.frames) for sink in sinks] == [1, 1]  # the good first mask was not shown either
    for slm, frame in zip(slms, first, strict=True):
        np.testing.assert_array_equal(slm.frame(), frame)


def test_a_halted_guard_shows_no_program_and_a_program_names_each_slm_once() -> None:
    guard, slms, sinks = _two_slms()
    guard.halt("emergency stop")
    shown = [len(sink.frames) for sink in sinks]  # the safe frames
    with pytest.raises(Halted):
        show_program([(slm, np.full((4, 6), 100)) for slm in slms])
    assert [len(sink.frames) for sink in sinks] == shown
    guard.release()
    with pytest.raises(RefusedRequest, match="one frame on each"):
        show_program([(slms[0], np.full((4, 6), 100)), (slms[0], np.full((4, 6), 110))])
    other = SafetyGuard(VirtualClock()).add_slm("mask1", ScreenSLM("mask1", MemorySink(), (4, 6), 0.1), FrameLimits())
    with pytest.raises(RefusedRequest, match="one bench's SLMs"):
        show_program([(slms[1], np.full((4, 6), 100)), (other, np.full((4, 6), 100))])


def test_the_lut_produces_only_levels_inside_the_gray_range() -> None:
    lut = PhaseLUT.linear()
    phases = torch.linspace(-4 * math.pi, 4 * math.pi, 4001)
    gray = lut.to_gray(phases, gray_range=GRAY)
    assert int(gray.min()) == GRAY[0] and int(gray.max()) == GRAY[1]
    reachable = (phases.remainder(2 * math.pi) > lut.phase[GRAY[0]]) & (
        phases.remainder(2 * math.pi) < lut.phase[GRAY[1]]
    )
    np.testing.assert_array_equal(gray[reachable], lut.to_gray(phases[reachable]))  # unchanged where reachable
    with pytest.raises(ValueError, match=r"gray range \[10, 300\]"):
        lut.to_gray(phases, gray_range=(10, 300))


def _limited_d2nn(**simulator: Any) -> dict[str, Any]:
    data = small_d2nn(**simulator)
    for mask in data["system"]["masks"]:
        data["devices"][mask]["frame_limits"] = {"gray": list(GRAY), "safe_gray": GRAY[0]}
    data["devices"][data["system"]["input"]]["frame_limits"] = {"gray": [0, 180], "safe_gray": 0}
    return data


@pytest.fixture
def limited() -> Iterator[Bench]:
    spec = parse_bench(_limited_d2nn(noise=False, detector_gain_spread=0.0), "limited-d2nn.yaml")
    with open_bench(spec, torch_device=CPU) as bench:
        yield bench


def test_a_d2nn_program_with_one_bad_mask_leaves_every_mask_as_it_was(limited: Bench) -> None:
    system = limited.system
    assert isinstance(system, D2NNSystem)
    chip = chip_of(limited)
    system.program(system.to_gray(smooth_phases(system, 3)))
    before = chip.mask_phases
    frames = system.to_gray(smooth_phases(system, 4))
    frames[1, 0, 0] = 255  # above mask2's limit
    with pytest.raises(LimitViolation, match=r"mask2\.pixel \(0, 0\) = 255 refused"):
        system.program(frames)
    assert torch.equal(chip.mask_phases, before)


def test_the_d2nn_forward_pass_shows_only_allowed_gray_levels(limited: Bench) -> None:
    system = limited.system
    assert isinstance(system, D2NNSystem)
    gray = system.to_gray(smooth_phases(system, 5))
    assert int(gray.min()) >= GRAY[0] and int(gray.max()) <= GRAY[1]
    frames = system.input_frames(torch.rand(4, 64, generator=torch.Generator().manual_seed(1)))
    assert int(frames.max()) <= 180
    y = system.forward(torch.rand(4, 64, generator=torch.Generator().manual_seed(2)), smooth_phases(system, 6))
    assert y.shape == (4, 10) and bool(torch.isfinite(y).all())


def test_the_lut_calibration_shows_only_allowed_gray_levels(limited: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    system = limited.system
    assert isinstance(system, D2NNSystem)
    shown: list[tuple[int, int]] = []
    for slm in system.masks:
        original = slm._device.show_frame

        def record(frame: np.ndarray, show: Any = original) -> None:
            shown.append((int(frame.min()), int(frame.max())))
            show(frame)

        monkeypatch.setattr(slm._device, "show_frame", record)
    result = calibrate_slm_luts(system, step=30, repeats=1, template_points=32, iterations=2)
    assert shown and min(low for low, _ in shown) >= GRAY[0] and max(high for _, high in shown) <= GRAY[1]
    assert {low for low, _ in shown} == {GRAY[0]} and max(high for _, high in shown) == GRAY[1]
    for lut in result.luts:
        assert lut.levels == 256 and bool(torch.isfinite(lut.phase).all())
        assert bool((lut.phase[: GRAY[0]] == lut.phase[GRAY[0]]).all())  # held below the range: never shown
        gray = lut.to_gray(smooth_phases(system, 7)[0], gray_range=GRAY)
        assert int(gray.min()) >= GRAY[0] and int(gray.max()) <= GRAY[1]
