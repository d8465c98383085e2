"""Light sources: the Keysight tunable-laser driver (exact bytes, then its emulator), the guard's refusals,
and a simulated bench whose detectors go dark when the laser is switched off."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cli_helpers import cli_json, cli_refusal
from instrument_helpers import POLICY, served

from labsat.api.schemas import DeviceInfo
from labsat.bench import builtin_bench_path, open_bench
from labsat.benchfile import DeviceSpec, LightLimits, parse_bench
from labsat.clock import VirtualClock
from labsat.describe import describe_bench
from labsat.devices import LightState
from labsat.drivers.keysight_tls import KeysightTLS, build
from labsat.drivers.testing import Pair, expected_protocol
from labsat.errors import BenchFaulted, BenchFileError, Halted, InstrumentError, LimitViolation
from labsat.guard import SafetyGuard
from labsat.simulators.emulators.laser import TunableLaserEmulator
from labsat.simulators.light import SimLightSource

OK = '+0,"No error"'
IDN = "Keysight Technologies,N7776C,DE12345678,1.0"
LIMITS = LightLimits(power_mw=(0.0, 2.0), wavelength_nm=(1540.0, 1560.0))


# -- the driver's bytes ------------------------------------------------------------------------------


def test_connect_sets_watts_checks_the_tuning_range_and_writes_with_explicit_units() -> None:
    pairs: list[Pair] = [
        ("*IDN?", IDN),
        ("*CLS;:SYST:ERR?", OK),
        ("SOUR0:POW:UNIT 1;:SYST:ERR?", OK),
        ("SOUR0:POW:UNIT?", "+1"),
        ("SOUR0:WAV? MIN", "+1.49500000E-006"),
        ("SOUR0:WAV? MAX", "+1.64000000E-006"),
        ("SOUR0:WAV 1550.0000NM;:SYST:ERR?", OK),
        ("SOUR0:POW 1.5MW;:SYST:ERR?", OK),
        ("SOUR0:POW:STAT 1;:SYST:ERR?", OK),
        ("SOUR0:POW:STAT?;:SOUR0:POW?;:SOUR0:WAV?", "1;+1.50000000E-003;+1.55000000E-006"),
        ("SOUR0:POW:STAT 0;:SYST:ERR?", OK),
    ]
    with expected_protocol(pairs) as link:
        laser = KeysightTLS("laser", link, LIMITS).connect()
        assert laser.tuning_range_nm == pytest.approx((1495.0, 1640.0))
        laser.set_wavelength_nm(1550.0)
        laser.set_power_mw(1.5)
        laser.set_enabled(True)
        state = laser.read_state()
        assert state.enabled and state.power_mw == pytest.approx(1.5) and state.wavelength_nm == pytest.approx(1550)
        laser.set_enabled(False)


# -- the driver against the emulated laser -------------------------------------------------------------


def _spec(address: str, limits: LightLimits = LIMITS) -> DeviceSpec:
    options = {"timeout_s": POLICY.timeout_s, "retries": POLICY.retries, "backoff_s": POLICY.backoff_s}
    return DeviceSpec(driver="keysight_tls", kind="light_source", address=address, light_limits=limits, options=options)


def _emulated(**kwargs: Any) -> tuple[SimLightSource, TunableLaserEmulator]:
    light = SimLightSource("beam", VirtualClock())
    return light, TunableLaserEmulator(light, **kwargs)


def test_a_laser_left_in_dbm_is_switched_to_watts_and_reads_back_what_was_set() -> None:
    light, emulator = _emulated()
    emulator.handle("SOUR0:POW 0")  # 0 dBm = 1 mW while the laser is in dBm (its preset)
    assert float(emulator.handle("SOUR0:POW?") or "nan") == pytest.approx(0.0)
    with served(emulator) as (_, address):
        laser = build("laser", _spec(address), None)  # type: ignore[arg-type]  # a TCPIP address needs no context
        assert emulator.unit_watt
        assert laser.read_state() == pytest.approx(LightState(False, 1.0, 1550.0))
        laser.set_power_mw(0.25)
        laser.set_wavelength_nm(1545.5)
        laser.set_enabled(True)
        assert laser.read_state() == pytest.approx(LightState(True, 0.25, 1545.5))
        assert light.read_state() == pytest.approx(LightState(True, 0.25, 1545.5))  # what the backend emits
        laser.set_enabled(False)  # the safe state
        assert not light.enabled and not laser.read_state().enabled
        laser.close()


def test_error_replies_are_named_with_the_command_and_code() -> None:
    light, emulator = _emulated(power_range_mw=(0.0, 10.0))
    with served(emulator) as (_, address):
        laser = build("laser", _spec(address), None)  # type: ignore[arg-type]
        with pytest.raises(InstrumentError, match=r"laser \(TCPIP::.+\): 'SOUR0:POW 12MW' was refused: -222 Data out"):
            laser.set_power_mw(12.0)
        assert light.power_mw == 0.0
        emulator.handle(":LOCK 1,1234")  # the mainframe's laser safety lock
        with pytest.raises(InstrumentError, match=r"'SOUR0:POW:STAT 1' was refused: -221 Settings conflict"):
            laser.set_enabled(True)
        assert not light.enabled
        laser.close()


def test_a_bench_whose_wavelength_limits_exceed_the_tuning_range_is_refused_at_connect() -> None:
    _, emulator = _emulated(tuning_range_nm=(1500.0, 1550.0))
    with (
        served(emulator) as (_, address),
        pytest.raises(
            InstrumentError, match=r"the bench allows 1540\.\.1560 nm but the laser tunes only 1500\.\.1550 nm"
        ),
    ):
        build("laser", _spec(address), None)  # type: ignore[arg-type]


def test_a_power_cycle_leaves_the_laser_off_and_a_reconnect_does_not_switch_it_on() -> None:
    light, emulator = _emulated()
    with served(emulator) as (_, address):
        laser = build("laser", _spec(address), None)  # type: ignore[arg-type]
        laser.set_power_mw(1.0)
        laser.set_enabled(True)
        emulator.power_cycle()
        emulator.faults.cut = 1  # the next exchange finds the link down: the driver reconnects, then reads
        state = laser.read_state()
        assert laser.link.reconnects >= 1
        assert not state.enabled and not light.enabled
        assert emulator.unit_watt  # the reconnect configured the unit again, so the reply is in W
        assert state.power_mw == pytest.approx(1.0)
        laser.close()


# -- the guard ---------------------------------------------------------------------------------------


class RecordingLight(SimLightSource):
    """A simulated laser that records every command the guard sends it."""

    def __init__(self) -> None:
        super().__init__("beam", VirtualClock())
        self.commands: list[tuple[str, float]] = []

    def set_enabled(self, on: bool) -> None:
        self.commands.append(("enabled", float(on)))
        super().set_enabled(on)

    def set_power_mw(self, power_mw: float) -> None:
        self.commands.append(("power_mw", power_mw))
        super().set_power_mw(power_mw)

    def set_wavelength_nm(self, wavelength_nm: float) -> None:
        self.commands.append(("wavelength_nm", wavelength_nm))
        super().set_wavelength_nm(wavelength_nm)


def _guarded() -> tuple[SafetyGuard, RecordingLight]:
    guard = SafetyGuard(VirtualClock())
    device = RecordingLight()
    guard.add_light_source("laser", device, LIMITS)
    return guard, device


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"power_mw": 2.5, "enabled": True}, r"laser\.power_mw = 2\.5 refused: above the maximum 2 mW"),
        ({"power_mw": -0.1}, r"laser\.power_mw = -0\.1 refused: below the minimum 0 mW"),
        ({"power_mw": math.nan}, r"laser\.power_mw = nan refused: not a finite number"),
        ({"power_mw": 1.0, "wavelength_nm": 1600.0}, r"laser\.wavelength_nm = 1600 refused: above the maximum 1560 nm"),
        ({"power_mw": 1.0, "wavelength_nm": 1530.0}, r"laser\.wavelength_nm = 1530 refused: below the minimum 1540"),
    ],
)
def test_values_outside_the_limits_are_refused_and_nothing_is_sent(change: dict[str, Any], message: str) -> None:
    guard, device = _guarded()
    with pytest.raises(LimitViolation, match=message):
        guard.lights["laser"].set(**change)
    assert device.commands == []


def test_switching_on_needs_an_allowed_setpoint_and_goes_last() -> None:
    guard, device = _guarded()
    device.wavelength_nm = 1600.0  # found outside the bench's limits
    light = guard.lights["laser"]
    light.read_back()
    with pytest.raises(LimitViolation, match=r"laser\.wavelength_nm = 1600 refused: switching on needs"):
        light.set(power_mw=1.0, enabled=True)
    assert device.commands == []
    state = light.set(power_mw=1.0, wavelength_nm=1550.0, enabled=True)
    assert state == LightState(True, 1.0, 1550.0)
    assert device.commands == [("wavelength_nm", 1550.0), ("power_mw", 1.0), ("enabled", 1.0)]
    device.commands.clear()
    light.set(power_mw=0.5, enabled=False)
    assert device.commands == [("enabled", 0.0), ("power_mw", 0.5)]  # off first


def test_a_halted_guard_refuses_every_change_but_switches_the_light_off() -> None:
    guard, device = _guarded()
    light = guard.lights["laser"]
    light.set(power_mw=1.0, wavelength_nm=1550.0, enabled=True)
    guard.halt("emergency stop")
    assert not device.enabled and light.state() == LightState(False, 1.0, 1550.0)
    device.commands.clear()
    with pytest.raises(Halted, match="emergency stop"):
        light.set(enabled=True)
    with pytest.raises(Halted):
        light.set(power_mw=0.5)
    assert device.commands == []
    guard.release()
    assert light.switch_on().enabled


def test_a_safe_state_the_instrument_does_not_confirm_raises_and_latches_a_fault() -> None:
    guard, device = _guarded()
    guard.lights["laser"].set(power_mw=1.0, wavelength_nm=1550.0, enabled=True)
    device.set_enabled = lambda on: None  # type: ignore[method-assign]  # a laser that ignores "off"
    with pytest.raises(InstrumentError, match="laser: the output is still on after switching off"):
        guard.safe_state()
    assert guard.state == "faulted"  # latched: no further change until an administrator clears it
    with pytest.raises(BenchFaulted):
        guard.lights["laser"].set(power_mw=0.5)


# -- a bench with a light source ---------------------------------------------------------------------


def _bench_data(driver: str = "sim", address: str | None = None) -> dict[str, Any]:
    data = yaml.safe_load(builtin_bench_path().read_text())
    data["simulator"]["noise"] = False
    laser: dict[str, Any] = {
        "driver": driver,
        "kind": "light_source",
        "light_limits": {"power_mw": [0.0, 2.0], "wavelength_nm": [1540.0, 1560.0]},
        "options": {"nominal_power_mw": 1.0} if driver == "sim" else {"timeout_s": 1.0},
    }
    if address is not None:
        laser["address"] = address
    data["devices"]["laser"] = laser
    return data


@pytest.mark.parametrize(("driver", "address"), [("sim", None), ("keysight_tls", "emulate://mrr/light")])
def test_switching_the_laser_off_drops_the_detector_signal_to_the_dark_level(driver: str, address: str | None) -> None:
    with open_bench(parse_bench(_bench_data(driver, address), "laser-mrr.yaml")) as bench:
        bench.source("heaters").set_vector(np.full(64, 2.0))
        bench.source("modulators").set_vector(np.full(8, 2.0))  # full modulation on every channel
        bench.clock.sleep(0.1)  # the heaters settle
        dark = bench.detectors["detectors"].read()
        np.testing.assert_allclose(dark, 0.002, atol=1e-3)  # the laser starts off: the detectors' dark level
        light = bench.lights["laser"]
        light.set(power_mw=1.0, wavelength_nm=1550.0, enabled=True)
        lit = bench.detectors["detectors"].read()
        assert np.abs(lit - dark).min() > 0.05
        light.set(power_mw=0.5)
        half = bench.detectors["detectors"].read()
        np.testing.assert_allclose(half - dark, (lit - dark) / 2, rtol=0.02, atol=2e-4)  # the input light halves
        bench.safe_state()
        assert light.state() is not None and not light.state().enabled  # type: ignore[union-attr]
        bench.source("modulators").set_vector(np.full(8, 2.0))
        np.testing.assert_allclose(bench.detectors["detectors"].read(), dark, atol=1e-4)


def test_the_devices_description_and_the_cli_show_the_light_source(tmp_path: Path) -> None:
    path = tmp_path / "laser-mrr.yaml"
    path.write_text(yaml.safe_dump(_bench_data()))
    with open_bench(path) as bench:
        bench.lights["laser"].set(power_mw=1.5, wavelength_nm=1550.0, enabled=True)
        entry = next(d for d in describe_bench(bench)["devices"] if d["name"] == "laser")
        assert entry["kind"] == "light_source" and "simulated laser" in entry["identity"]
        assert entry["light"] == {
            "power_mw_range": [0.0, 2.0],
            "wavelength_nm_range": [1540.0, 1560.0],
            "safe": "off",
            "enabled": True,
            "power_mw": 1.5,
            "wavelength_nm": 1550.0,
        }
        shown = DeviceInfo.model_validate(entry).light  # what GET /api/benches/{name} returns for it
        assert shown is not None and shown.enabled and shown.power_mw_range == (0.0, 2.0)
    switched = cli_json("light", "laser", "--power-mw", "1.2", "--wavelength-nm", "1545", "--on", "--bench", str(path))
    assert switched == {"device": "laser", "enabled": True, "power_mw": 1.2, "wavelength_nm": 1545.0}
    refusal = cli_refusal("light", "laser", "--power-mw", "5", "--on", "--bench", str(path))
    assert refusal == "error: laser.power_mw = 5 refused: above the maximum 2 mW; nothing was written"
    assert "has no light source 'heaters'" in cli_refusal("light", "heaters", "--off", "--bench", str(path))
    listed = cli_json("devices", "--bench", str(path), "--data-dir", str(tmp_path))
    assert [d["light"]["enabled"] for d in listed["devices"] if d["name"] == "laser"] == [False]
    assert cli_json("safe", "--bench", str(path), "--data-dir", str(tmp_path))["lights_off"] == {"laser": True}


def _set(data: dict[str, Any], keys: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    *path, last = keys.split(".")
    node = changed
    for key in path:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return changed


@pytest.mark.parametrize(
    ("keys", "value", "key", "message"),
    [
        ("devices.laser.light_limits", None, "devices.laser", "a light_source needs 'light_limits'"),
        ("devices.laser.light_limits.power_mw", [3.0, 1.0], "devices.laser.light_limits", "power_mw range is inverted"),
        ("devices.laser.light_limits.power_mw", [-1.0, 1.0], "devices.laser.light_limits", "min -1 is negative"),
        ("devices.laser.light_limits.wavelength_nm", [0.0, 1.0], "devices.laser.light_limits", "must be positive"),
        ("devices.laser.light_limits.colour", "red", "devices.laser.light_limits.colour", "unknown key"),
        ("devices.heaters.light_limits", {"power_mw": [0, 1], "wavelength_nm": [1, 2]}, "devices.heaters", "belong to"),
    ],
)
def test_bad_light_source_entries_name_the_file_and_key(keys: str, value: Any, key: str, message: str) -> None:
    with pytest.raises(BenchFileError) as raised:
        parse_bench(_set(_bench_data(), keys, value), "laser-mrr.yaml")
    assert raised.value.path == "laser-mrr.yaml" and raised.value.key == key
    assert message in raised.value.detail


@pytest.mark.parametrize(
    ("options", "key"), [({"nominal_power_mw": -1}, "nominal_power_mw"), ({"colour": 1}, "colour")]
)
def test_a_bad_simulated_laser_option_names_the_file_and_key(tmp_path: Path, options: dict[str, Any], key: str) -> None:
    path = tmp_path / "laser-mrr.yaml"
    path.write_text(yaml.safe_dump(_set(_bench_data(), "devices.laser.options", options)))
    expected = rf"laser-mrr\.yaml: devices\.laser\.options\.{key}: (must be|unknown key)"
    with pytest.raises(BenchFileError, match=expected):
        open_bench(path)
