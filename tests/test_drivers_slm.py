"""The SLM driver: frames are checked before they reach a sink; the headless sink records them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from labsat.benchfile import DeviceSpec, load_bench_file
from labsat.clock import VirtualClock
from labsat.devices import SLM
from labsat.drivers.slm import MemorySink, ScreenSLM, build
from labsat.errors import InstrumentError
from labsat.registry import BenchContext

received: list[np.ndarray] = []


def vendor_write_image(frame: np.ndarray) -> None:
    """Stands in for a vendor SDK's Write_image wrapper."""
    received.append(frame)


def _build(**options: object) -> ScreenSLM:
    path = Path(__file__).parents[1] / "config" / "sim-mrr.yaml"
    context = BenchContext(load_bench_file(path), str(path), VirtualClock(), torch.device("cpu"))
    return build("slm", DeviceSpec(driver="slm_screen", kind="slm", options=options), context)


def test_memory_sink_keeps_each_frame_and_the_slm_follows_the_protocol() -> None:
    slm = _build(shape=[4, 6], sink="memory", settle_time_s=0.1)
    assert isinstance(slm, SLM)
    frame = np.arange(24, dtype=np.uint8).reshape(4, 6)
    slm.show_frame(frame)
    assert isinstance(slm.sink, MemorySink)
    np.testing.assert_array_equal(slm.sink.frames[-1], frame)
    assert slm.shape == (4, 6)
    assert slm.settle_time == 0.1
    assert slm.identity() == "SLM 4x6 (headless memory sink)"


def test_integer_frames_in_range_are_converted_to_8_bit() -> None:
    slm = _build(shape=[2, 2], sink="memory")
    slm.show_frame(np.array([[0, 255], [128, 7]], dtype=np.int64))
    assert slm.sink.frames[-1].dtype == np.uint8  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((3, 2), dtype=np.uint8), r"frame shape \(3, 2\) differs from the SLM's \(2, 2\)"),
        (np.full((2, 2), 256), "frames must be 8-bit gray levels"),
        (np.full((2, 2), 0.5), "frames must be 8-bit gray levels"),
    ],
)
def test_bad_frames_never_reach_the_sink(frame: np.ndarray, message: str) -> None:
    slm = _build(shape=[2, 2], sink="memory")
    with pytest.raises(InstrumentError, match=message):
        slm.show_frame(frame)
    assert slm.sink.frames == []  # type: ignore[attr-defined]


def test_callback_sink_hands_frames_to_a_vendor_sdk_wrapper() -> None:
    slm = _build(shape=[2, 3], sink="callback", callback=f"{__name__}:vendor_write_image")
    slm.show_frame(np.ones((2, 3), dtype=np.uint8))
    assert received[-1].shape == (2, 3)
    assert "vendor SDK callback" in slm.identity()


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (e.g. xvfb-run)")
def test_screen_sink_shows_the_frame_pixel_for_pixel() -> None:
    slm = _build(shape=[32, 48], sink="screen", screen_origin=[10, 20])
    frame = (np.arange(32 * 48) % 256).astype(np.uint8).reshape(32, 48)
    slm.show_frame(frame)
    image = slm.sink._image  # type: ignore[attr-defined]
    assert (image.width(), image.height()) == (48, 32)
    assert image.get(5, 3) == (frame[3, 5],) * 3
    assert slm.identity() == "SLM 32x48 (screen at +10+20)"


def test_configuration_errors_are_clear() -> None:
    with pytest.raises(InstrumentError, match=r"needs options\.shape"):
        _build(sink="memory")
    with pytest.raises(InstrumentError, match="unknown SLM sink 'hologram'"):
        _build(shape=[2, 2], sink="hologram")
    with pytest.raises(InstrumentError, match="callback 'nowhere:nothing' cannot be loaded"):
        _build(shape=[2, 2], sink="callback", callback="nowhere:nothing")
