"""The SLM guard: a frame that breaks a rule never reaches the SLM; settling, safe frame and halt."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from labsat.benchfile import DeviceSpec, FrameLimits
from labsat.clock import VirtualClock
from labsat.drivers.slm import MemorySink, ScreenSLM
from labsat.errors import Halted, LimitViolation, RefusedRequest
from labsat.guard import GuardedSLM, SafetyGuard


def _guarded(limits: FrameLimits | None = None) -> tuple[GuardedSLM, MemorySink, VirtualClock]:
    clock = VirtualClock()
    sink = MemorySink()
    guard = SafetyGuard(clock)
    slm = guard.add_slm("mask1", ScreenSLM("mask1", sink, (4, 6), 0.25), limits or FrameLimits())
    return slm, sink, clock


def test_a_new_frame_is_shown_then_waited_on_and_a_repeated_one_is_free() -> None:
    slm, sink, clock = _guarded()
    frame = np.arange(24).reshape(4, 6)
    slm.show(frame)
    np.testing.assert_array_equal(sink.frames[-1], frame)
    assert clock.now() == pytest.approx(0.25)
    slm.show(torch.tensor(frame, dtype=torch.float32))  # whole gray levels in any dtype: the same frame
    assert len(sink.frames) == 1 and clock.now() == pytest.approx(0.25)
    np.testing.assert_array_equal(slm.frame(), frame)


@pytest.mark.parametrize(
    ("frame", "error", "message"),
    [
        (np.zeros((6, 4)), RefusedRequest, r"mask1: frame shape \(6, 4\) differs from the SLM's \(4, 6\)"),
        (
            np.full((4, 6), 256),
            LimitViolation,
            r"mask1\.pixel \(0, 0\) = 256 refused: above the highest gray level 255",
        ),
        (np.full((4, 6), -1), LimitViolation, "below the lowest gray level 0"),
        (
            np.where(np.eye(4, 6) > 0, math.nan, 1.0),
            LimitViolation,
            r"pixel \(0, 0\) = nan refused: not a finite number",
        ),
        (np.full((4, 6), 1.5), LimitViolation, "not a whole gray level"),
        (np.full((4, 6), "a"), RefusedRequest, "must hold gray levels"),
    ],
)
def test_bad_frames_never_reach_the_slm(frame: np.ndarray, error: type[Exception], message: str) -> None:
    slm, sink, clock = _guarded()
    with pytest.raises(error, match=message):
        slm.show(frame)
    assert sink.frames == [] and clock.now() == 0 and slm.frame() is None


def test_the_configured_gray_range_is_enforced() -> None:
    slm, sink, _ = _guarded(FrameLimits(gray=(10, 200), safe_gray=10))
    frame = np.full((4, 6), 100)
    frame[2, 3] = 201
    with pytest.raises(LimitViolation, match=r"mask1\.pixel \(2, 3\) = 201 refused: above the highest gray level 200"):
        slm.show(frame)
    assert sink.frames == []


def test_a_batch_is_checked_whole_and_the_bad_sample_named() -> None:
    slm, sink, _ = _guarded()
    frames = torch.zeros(3, 4, 6, dtype=torch.int64)
    slm.check_batch(frames)
    frames[2, 1, 5] = 300
    with pytest.raises(LimitViolation, match=r"pixel \(2, 1, 5\) = 300"):
        slm.check_batch(frames)
    with pytest.raises(RefusedRequest, match="frame shape"):
        slm.check_batch(frames[0])
    assert sink.frames == []


def test_halt_shows_the_safe_frame_and_refuses_frames_until_released() -> None:
    slm, sink, _ = _guarded(FrameLimits(safe_gray=7))
    slm.show(np.full((4, 6), 100))
    slm._guard.halt("emergency stop")
    np.testing.assert_array_equal(sink.frames[-1], np.full((4, 6), 7))
    with pytest.raises(Halted, match="emergency stop"):
        slm.show(np.full((4, 6), 100))
    with pytest.raises(Halted):
        slm.check_batch(torch.zeros(1, 4, 6))
    assert len(sink.frames) == 2
    slm._guard.release()
    slm.show(np.full((4, 6), 100))
    assert len(sink.frames) == 3


def test_frame_limits_must_make_sense() -> None:
    with pytest.raises(ValidationError, match=r"0 <= min <= max <= 255"):
        FrameLimits(gray=(0, 256))
    with pytest.raises(ValidationError, match="safe gray 9 lies outside the gray range"):
        FrameLimits(gray=(10, 200), safe_gray=9)
    with pytest.raises(ValidationError, match="frame_limits belong to an slm, not a detector"):
        DeviceSpec(driver="sim", kind="detector", channels={"count": 2}, frame_limits=FrameLimits())
