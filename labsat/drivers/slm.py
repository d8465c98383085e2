"""Spatial light modulators: an 8-bit gray-level frame shown on a secondary display or handed to a vendor SDK.

Most phase SLMs (Holoeye, Meadowlark HDMI, Hamamatsu in DVI mode, Thorlabs Exulus) are a monitor:
the frame goes full screen, undecorated, pixel for pixel, on the display the SLM is plugged into.
Others take frames through a vendor SDK (Meadowlark Blink ``Write_image``, Holoeye HEDS), always a
Windows DLL that labsat cannot ship; the bench names a Python callable that wraps it. Tests and CI
use the headless memory sink. Where the frame goes is a :class:`FrameSink`; the driver itself only
checks the frame (shape, 8-bit range) so that a bad frame never reaches the glass.

Bench options: ``shape: [H, W]`` (required), ``sink: screen | callback | memory`` (default
``screen``), ``screen_origin: [x, y]`` (top-left pixel of the SLM's display in the desktop, default
``[0, 0]``), ``callback: "package.module:function"`` (called with each ``(H, W)`` uint8 frame), and
``settle_time_s`` (liquid-crystal settling, default 0.3 s as in slmsuite).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from labsat.benchfile import DeviceSpec
from labsat.errors import InstrumentError
from labsat.registry import BenchContext


class FrameSink(Protocol):
    """Where a checked frame goes."""

    def show(self, frame: np.ndarray) -> None: ...

    def describe(self) -> str:
        """Shown as part of the SLM's identity."""
        ...


class MemorySink:
    """Headless: keeps the frames it was shown (tests, CI, dry runs)."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def show(self, frame: np.ndarray) -> None:
        self.frames.append(frame.copy())

    def describe(self) -> str:
        return "headless memory sink"


class CallbackSink:
    """Hands each frame to a vendor-SDK wrapper, named ``"package.module:function"`` in the bench file."""

    def __init__(self, target: str) -> None:
        module, _, function = target.partition(":")
        try:
            self._callback: Callable[[np.ndarray], Any] = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError, ValueError) as exc:
            raise InstrumentError(f"SLM callback {target!r} cannot be loaded ({exc})") from None
        self._target = target

    def show(self, frame: np.ndarray) -> None:
        try:
            self._callback(frame)
        except Exception as exc:  # a vendor SDK may raise anything; the user needs its message
            raise InstrumentError(f"SLM callback {self._target!r} failed: {exc}") from exc

    def describe(self) -> str:
        return f"vendor SDK callback {self._target}"


class ScreenSink:
    """A borderless Tk window covering the SLM's display, one image pixel per SLM pixel.

    Tk is driven from the thread that shows frames (no main loop thread): each frame is shown and
    the window updated before :meth:`show` returns.
    """

    def __init__(self, shape: tuple[int, int], origin: tuple[int, int]) -> None:
        import tkinter

        height, width = shape
        try:
            self._root = tkinter.Tk()
        except tkinter.TclError as exc:
            raise InstrumentError(f"SLM screen sink: no display available ({exc}); use sink: memory") from None
        self._root.overrideredirect(True)
        self._root.geometry(f"{width}x{height}+{origin[0]}+{origin[1]}")
        self._label = tkinter.Label(self._root, borderwidth=0, highlightthickness=0)
        self._label.pack()
        self._tk = tkinter
        self._image: Any = None
        self._origin = origin

    def show(self, frame: np.ndarray) -> None:
        height, width = frame.shape
        pgm = f"P5 {width} {height} 255\n".encode("ascii") + frame.tobytes()
        self._image = self._tk.PhotoImage(data=pgm, format="PPM")  # Tk's PPM reader takes binary PGM
        self._label.configure(image=self._image)
        self._root.update()

    def describe(self) -> str:
        return f"screen at +{self._origin[0]}+{self._origin[1]}"


class ScreenSLM:
    """An SLM as a labsat :class:`~labsat.devices.SLM`."""

    def __init__(self, name: str, sink: FrameSink, shape: tuple[int, int], settle_time_s: float) -> None:
        self.name = name
        self.sink = sink
        self.shape = shape
        self.settle_time = settle_time_s

    def identity(self) -> str:
        return f"SLM {self.shape[0]}x{self.shape[1]} ({self.sink.describe()})"

    def show_frame(self, gray: np.ndarray) -> None:
        """Show an (H, W) frame of integers 0..255; anything else is refused before it reaches the SLM."""
        frame = np.asarray(gray)
        if frame.shape != self.shape:
            raise InstrumentError(f"{self.name}: frame shape {frame.shape} differs from the SLM's {self.shape}")
        if frame.dtype != np.uint8:
            if not np.issubdtype(frame.dtype, np.integer) or frame.min() < 0 or frame.max() > 255:
                raise InstrumentError(f"{self.name}: frames must be 8-bit gray levels (0..255), got {frame.dtype}")
            frame = frame.astype(np.uint8)
        self.sink.show(np.ascontiguousarray(frame))


def build(name: str, spec: DeviceSpec, context: BenchContext) -> ScreenSLM:
    """Entry point ``slm_screen``."""
    options = spec.options
    if "shape" not in options:
        raise InstrumentError(f"{name}: slm_screen needs options.shape: [height, width]")
    height, width = (int(n) for n in options["shape"])
    kind = options.get("sink", "screen")
    sink: FrameSink
    if kind == "memory":
        sink = MemorySink()
    elif kind == "callback":
        sink = CallbackSink(str(options.get("callback", "")))
    elif kind == "screen":
        x, y = (int(n) for n in options.get("screen_origin", (0, 0)))
        sink = ScreenSink((height, width), (x, y))
    else:
        raise InstrumentError(f"{name}: unknown SLM sink {kind!r} (screen, callback or memory)")
    return ScreenSLM(name, sink, (height, width), float(options.get("settle_time_s", 0.3)))
