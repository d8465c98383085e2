"""Manual bench commands: list devices, set channels, go to the safe state."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from labsat.cli.app import BenchOption, DataDirOption, JsonOption, app, bench_session, emit, user_errors
from labsat.cli.client import TokenOption
from labsat.client import LabsatClient
from labsat.describe import describe_bench
from labsat.errors import LabsatError
from labsat.ownership import BenchInUse


def _tables(described: dict) -> list[Table]:
    tables = []
    state = described["state"] + (f": {described['fault']}" if described.get("fault") else "")
    summary = Table(title=f"bench {described['bench']} ({described['file']}), {state}")
    for column in ("device", "driver", "kind", "address", "identity", "channels"):
        summary.add_column(column)
    for device in described["devices"]:
        summary.add_row(
            device["name"],
            device["driver"],
            device["kind"],
            str(device["address"]),
            device.get("identity", ""),
            str(len(device.get("channels", []))),
        )
    tables.append(summary)
    for device in described["devices"]:
        light = device.get("light")
        if light is not None:
            table = Table(title=f"{device['name']} light source")
            for column in light:
                table.add_column(column, justify="right")
            table.add_row(*(str(value) for value in light.values()))
            tables.append(table)
    for device in described["devices"]:
        channels = device.get("channels", [])
        if not channels:
            continue
        table = Table(title=f"{device['name']} channels")
        for column in channels[0]:
            table.add_column(column, justify="left" if column == "name" else "right")
        for channel in channels:
            table.add_row(
                *("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in channel.values())
            )
        tables.append(table)
    return tables


@app.command()
@user_errors
def devices(bench: BenchOption = None, data_dir: DataDirOption = None, json: JsonOption = False) -> None:
    """List the bench's devices, channels, limits and present values."""
    with bench_session(bench, data_dir, hold=True) as opened:
        described = describe_bench(opened)
    emit(described, _tables(described), json)


def _parse_assignment(text: str) -> tuple[str, float]:
    target, sep, value = text.partition("=")
    if not sep or "." not in target:
        raise LabsatError(f"{text!r} is not DEVICE.CHANNEL=VALUE")
    try:
        return target.strip(), float(value)
    except ValueError:
        raise LabsatError(f"{text!r}: {value!r} is not a number") from None


@app.command(name="set")
@user_errors
def set_channels(
    assignments: Annotated[list[str], typer.Argument(help="DEVICE.CHANNEL=VOLTS, e.g. heaters.h3=1.5")],
    bench: BenchOption = None,
    data_dir: DataDirOption = None,
    json: JsonOption = False,
    token: TokenOption = None,
) -> None:
    """Set channels through the safety guard (ramped; all values checked before any is written).

    While a service owns the bench, the values go through its API (and its guard) when a token is given;
    any other owner is named and nothing is written."""
    values = dict(_parse_assignment(text) for text in assignments)
    try:
        with bench_session(bench, data_dir, hold=True) as opened:
            opened.set_channels(values)
            result = {target: opened.channel_value(target) for target in values}
    except BenchInUse as exc:
        result = _set_through_the_service(exc, values, token)
    table = Table(title="set")
    table.add_column("channel")
    table.add_column("volts", justify="right")
    for target, volts in result.items():
        table.add_row(target, f"{volts:.4g}")
    emit({"set": result}, [table], json)


def _set_through_the_service(in_use: BenchInUse, values: dict[str, float], token: str | None) -> dict[str, float]:
    """The write sent to the service that owns the bench, so its one guard checks it (409 while a job runs)."""
    owner = in_use.owner
    if owner is None or owner.url is None:
        raise in_use
    if not token:
        raise LabsatError(
            f"{in_use}; give the operator's token (--token or LABSAT_TOKEN) to set it through the service"
        )
    try:
        with LabsatClient(owner.url, token) as client:
            return client.set_channels(owner.bench, values)
    except LabsatError as exc:
        raise LabsatError(f"through the service that holds bench {owner.bench!r} ({owner.describe()}): {exc}") from None


@app.command()
@user_errors
def light(
    device: Annotated[str, typer.Argument(help="The light source's device name in the bench file.")],
    power_mw: Annotated[float | None, typer.Option("--power-mw", help="Output power in mW.")] = None,
    wavelength_nm: Annotated[float | None, typer.Option("--wavelength-nm", help="Wavelength in nm.")] = None,
    output: Annotated[bool | None, typer.Option("--on/--off", help="Switch the output on or off.")] = None,
    bench: BenchOption = None,
    data_dir: DataDirOption = None,
    json: JsonOption = False,
) -> None:
    """Tune or switch a light source through the safety guard (every value checked before any is sent)."""
    with bench_session(bench, data_dir, hold=True) as opened:
        if device not in opened.lights:
            have = ", ".join(opened.lights) or "none"
            raise LabsatError(f"bench {opened.name!r} has no light source {device!r} (light sources: {have})")
        state = opened.lights[device].set(power_mw=power_mw, wavelength_nm=wavelength_nm, enabled=output)
    result = {"device": device, **state._asdict()}
    table = Table(title=f"{device} light source")
    for column in result:
        table.add_column(column)
    table.add_row(*(str(value) for value in result.values()))
    emit(result, [table], json)


@app.command()
@user_errors
def safe(bench: BenchOption = None, data_dir: DataDirOption = None, json: JsonOption = False) -> None:
    """Ramp every output to its safe value and switch it off."""
    with bench_session(bench, data_dir) as opened:
        opened.safe_state()
        result = {name: source.values().tolist() for name, source in opened.sources.items()}
        lights = {name: light.state() for name, light in opened.lights.items()}
    table = Table(title=f"bench {opened.name}: safe state")
    table.add_column("device")
    table.add_column("values (V)")
    for name, values in result.items():
        table.add_row(name, f"all at safe values ({min(values):g}..{max(values):g})")
    for name, state in lights.items():
        table.add_row(name, "output off" if state is not None and not state.enabled else "output state unknown")
    off = {name: state is not None and not state.enabled for name, state in lights.items()}
    emit({"bench": opened.name, "safe": result, "lights_off": off}, [table], json)
