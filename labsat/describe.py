"""What a bench is made of and what it outputs now: the one description the CLI and the service show.

``labsat devices`` prints it as tables and ``GET /api/benches/{name}`` returns it as JSON, so both faces
always agree on names, limits and units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from labsat.bench import Bench


def describe_bench(bench: Bench, *, live: bool = True) -> dict[str, Any]:
    """Devices, channels, limits and present values of ``bench``.

    ``live`` asks the instruments (voltage outputs read back, detectors read). ``live=False`` touches no
    instrument: outputs are what the guard last wrote and detectors have no reading. The service uses
    it while a job owns the hardware, because a read from another thread would interleave with the
    job's own measurements.
    """
    devices = []
    for name, spec in bench.spec.devices.items():
        entry: dict[str, Any] = {"name": name, "driver": spec.driver, "kind": spec.kind, "address": spec.address}
        if name in bench.sources:
            source = bench.sources[name]
            present = source.read_back() if live else source.values()
            power = source.power_mw(present)
            entry["identity"] = source.identity()
            entry["channels"] = [
                {
                    "name": channel,
                    "min_v": lim.voltage[0],
                    "max_v": lim.voltage[1],
                    "power_max_mw": lim.power_max_mw,
                    "max_step_v": lim.max_step,
                    "safe_v": lim.safe,
                    "present_v": float(present[i]),
                    "present_mw": float(power[i]),
                }
                for i, (channel, lim) in enumerate(zip(source.channel_names, source.limits, strict=True))
            ]
        elif name in bench.slms:
            slm = bench.slms[name]
            frame = slm.frame()
            entry["identity"] = slm.identity()
            entry["frame"] = {
                "shape": list(slm.shape),
                "gray_range": list(slm.limits.gray),
                "safe_gray": slm.limits.safe_gray,
                "settle_time_s": slm.settle_time,
                "present_mean_gray": None if frame is None else float(frame.mean()),
                "preview": None if frame is None else preview(frame).tolist(),
            }
        elif name in bench.lights:
            light = bench.lights[name]
            state = light.read_back() if live else light.state()
            entry["identity"] = light.identity()
            entry["light"] = {
                "power_mw_range": list(light.limits.power_mw),
                "wavelength_nm_range": list(light.limits.wavelength_nm),
                "safe": "off",
                "enabled": None if state is None else state.enabled,
                "power_mw": None if state is None else state.power_mw,
                "wavelength_nm": None if state is None else state.wavelength_nm,
            }
        elif name in bench.detectors:
            detector = bench.detectors[name]
            reading = detector.read() if live else None
            assert spec.channels is not None
            entry["identity"] = detector.identity()
            entry["channels"] = [
                {"name": channel, "present": None if reading is None else float(reading[i])}
                for i, channel in enumerate(spec.channels.names)
            ]
        devices.append(entry)
    guard = bench.guard
    return {
        "bench": bench.name,
        "file": bench.path,
        "state": guard.state,
        "fault": guard.faulted,
        "power_budget_mw": guard.heater_power_budget_mw,
        "power_used_mw": sum(float(source.budget_power_mw().sum()) for source in guard.sources.values()),
        "devices": devices,
    }


PREVIEW_PIXELS = 32
"""Largest side of an SLM frame's preview: enough to see a mask's pattern, small enough to send every poll."""


def preview(frame: np.ndarray, side: int = PREVIEW_PIXELS) -> np.ndarray:
    """``frame`` ``(H, W)`` shrunk by block means to at most ``side`` pixels a side (gray levels, rounded)."""
    rows, cols = frame.shape
    step_r, step_c = -(-rows // side), -(-cols // side)
    padded = np.pad(frame.astype(np.float64), ((0, -rows % step_r), (0, -cols % step_c)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // step_r, step_r, padded.shape[1] // step_c, step_c)
    return np.round(blocks.mean(axis=(1, 3)), 1)
