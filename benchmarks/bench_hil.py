"""Hardware loop: bench time per training step against the settle-limited bound, on the simulated and emulated bench.

Usage: ``python benchmarks/bench_hil.py [--steps N] [--batch-size B] [--no-write]``

The settle-limited bound of a step is what the heaters and detectors cannot avoid: every tile program waits
``settle_time_s`` after its last write, every sample integrates for the detector's integration time. The
estimate is the bench clock's own count (bus writes, ramp step delays, settle, integration). Each training
row runs twice in one process, tiles in the layer's row-major order (``given``) and in the shortest-ramp
order (``nearest``, the default), so the two ratios stand side by side. The breakdown splits the estimate
into settle, integration, and the rest (ramp writes and the step delays between them).

Both benches are the same chip (same seed): the emulated one reaches it through the Qontrol, SCPI DAC and
SCPI DAQ drivers and their wire-level emulators, where one ramp point is a ``vvec`` line per 8-channel module.
The twin is calibrated once on the simulated bench and used for both. Calibration programs heater maps
directly (no tiles), so it has one row per bench. Counting per step reuses ``bench_training.measure``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import tempfile
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_training import measure
from results import add_write_option, publish

from labsat.bench import Bench, builtin_bench_path, open_bench
from labsat.calibration import CalibrationRecord
from labsat.store import Store
from labsat.systems.mrr import MRRBankSystem, TileOrder
from labsat.training.physical import PhysicalLayer
from labsat.training.session import bench_twin
from labsat.truth import SIMULATED_CHIP
from labsat.twin import apply_calibration

SECTION = "bench_hil"
METHODS: list[tuple[str, str | None]] = [("pat", None), ("pat+sat", "pat"), ("pat+sat", "twin"), ("pat+sat", "spsa")]
METHODS += [("dat", None)]
ORDERS: tuple[TileOrder, ...] = ("given", "nearest")


def bound_s(bench: Bench, programs: float, samples: float) -> tuple[float, float]:
    """The settle-limited bound's two parts: ``programs × settle_time_s`` and ``samples × integration time``."""
    system = bench.system
    assert isinstance(system, MRRBankSystem)
    return programs * system.spec.settle_time_s, samples * system.detectors.integration_time


def row(bench: Bench, label: str, method: str, order: str, programs: float, samples: float, estimate: float) -> dict:
    settle, integration = bound_s(bench, programs, samples)
    bound = settle + integration
    return {
        "bench": label,
        "method": method,
        "order": order,
        "programs": programs,
        "samples": samples,
        "bound_ms": 1e3 * bound,
        "estimate_ms": 1e3 * estimate,
        "ratio": bound / estimate if estimate else float("nan"),
        "settle_pct": 100 * settle / estimate,
        "integration_pct": 100 * integration / estimate,
        "ramp_pct": 100 * (estimate - bound) / estimate,
    }


class WriteCounter:
    """Counts the heater instrument's writes below the guard: one per ramp point (the guard writes a point whole)."""

    def __init__(self, bench: Bench) -> None:
        self.count = 0
        device = bench.sources["heaters"]._device  # the raw instrument: counting only, every write still guarded
        write = device.write_voltages

        def counted(positions: np.ndarray, volts: np.ndarray) -> None:
            self.count += 1
            write(positions, volts)

        device.write_voltages = counted  # type: ignore[method-assign]

    def reset(self) -> None:
        self.count = 0


def training_rows(bench: Bench, label: str, physical: PhysicalLayer, steps: int, batch: int) -> list[dict]:
    system = bench.system
    assert isinstance(system, MRRBankSystem)
    writes = WriteCounter(bench)
    rows = []
    for method, ascent in METHODS:
        for order in ORDERS:
            system.tile_order = order
            cost = measure(physical, "digits", method, ascent, steps, batch, after_warmup=writes.reset)
            name = method if ascent is None else f"{method} ({cost['ascent']})"
            rows.append(row(bench, label, name, order, cost["programs"], cost["samples"], cost["bench_s"]))
            rows[-1]["points"] = writes.count / steps / cost["programs"]
            print(rows[-1], file=sys.stderr, flush=True)
    system.tile_order = "nearest"
    return rows


def settle_overlap(bench: Bench, tiles: np.ndarray, waits_s: tuple[float, ...]) -> list[dict]:
    """What counting the ramp's own step delays toward the heater settle would cost in accuracy.

    For each pair of consecutive tile programs ``tiles`` ``(T, n)`` of a training step: settle on the first,
    ramp (through the guard) to the second, wait ``wait`` after its last write, and compare the chip's
    noiseless detector volts with those of the fully settled heaters; the worst error over the pairs is set
    against the read noise. The bench file's wait is ``settle_time_s``; a shorter one is what a schedule that
    let intermediate ramp delays count toward the settle would measure at.
    """
    chip = bench.shared[SIMULATED_CHIP]
    heaters, clock = bench.sources["heaters"], bench.clock
    drive = torch.full((1, chip.cols), 2.0, dtype=torch.float64)  # every modulator at full power
    full = float(chip.ideal(drive).abs().max())
    noise = float(chip.noise_sigma_v(drive).max()) / full
    rows = []
    for wait in waits_s:
        worst = 0.0
        for before, after in pairwise(tiles):
            heaters.set_vector(before)
            clock.sleep(1.0)
            heaters.set_vector(after)
            clock.sleep(wait)
            early = chip.ideal(drive)
            clock.sleep(1.0)
            worst = max(worst, float((early - chip.ideal(drive)).abs().max()) / full)
        rows.append({"wait_ms": 1e3 * wait, "error_pct": 100 * worst, "noise_pct": 100 * noise})
    return rows


def step_tiles(bench: Bench, physical: PhysicalLayer, batch: int) -> np.ndarray:
    """The heater vectors one PAT step programs, in order (recorded after each program)."""
    system = bench.system
    assert isinstance(system, MRRBankSystem)
    heaters, program, tiles = bench.sources["heaters"], system.program, []

    def recorded(volts: torch.Tensor) -> None:
        program(volts)
        tiles.append(heaters.values())

    setattr(system, "program", recorded)  # noqa: B010 - the instance's own, removed below
    try:
        measure(physical, "digits", "pat", None, 1, batch)
    finally:
        delattr(system, "program")
    return np.array(tiles[-20:])


def calibration_row(bench: Bench, label: str, record: CalibrationRecord) -> dict:
    """The whole calibration's queries, summed over its procedures."""
    costs = [result.cost for name in record.procedures if (result := record.result(name)) is not None]
    programs, samples = sum(c.programs for c in costs), sum(c.samples for c in costs)
    return row(bench, label, "calibration", "-", programs, samples, sum(c.bench_time_s for c in costs))


def timing(bench: Bench) -> tuple[float, float, float]:
    """The simulated bench's instrument command time, heater step delay and settle time (s)."""
    system = bench.system
    assert isinstance(system, MRRBankSystem)
    step_delay = max(limits.step_delay for limits in bench.sources["heaters"].limits)
    return bench.shared[SIMULATED_CHIP].config.bus_latency_s, step_delay, system.spec.settle_time_s


def breakdown(rows: list[dict[str, Any]], times: tuple[float, float, float]) -> list[str]:
    """Where a simulated PAT step's estimate goes: settle, bus writes, step delays, the rest (integration), in ms."""
    bus_latency, step_delay, settle_time = times
    lines = []
    for r in rows:
        if r["bench"] != "simulated" or r["method"] != "pat":
            continue
        writes = r["points"] * r["programs"]
        bus, delays = writes * bus_latency * 1e3, (writes - r["programs"]) * step_delay * 1e3
        settle = r["programs"] * settle_time * 1e3
        integration = r["estimate_ms"] - settle - bus - delays
        lines.append(
            f"Simulated PAT step, {r['order']} tile order: {r['estimate_ms']:.1f} ms = settle {settle:.0f} "
            f"({100 * settle / r['estimate_ms']:.1f} %) + {writes:.0f} heater writes on the bus {bus:.0f} "
            f"({100 * bus / r['estimate_ms']:.1f} %) + {writes - r['programs']:.0f} step delays {delays:.0f} "
            f"({100 * delays / r['estimate_ms']:.1f} %) + the rest (integration) {integration:.2f} ms.  "
        )
    if lines:
        ceiling = settle_time / (settle_time + bus_latency)
        lines.append(
            f"A program is at least one write: with no ramp at all the ratio would be at most {ceiling:.3f} "
            "(settle / (settle + one bus write)); every further ramp point adds a write and a step delay. The step "
            "delay runs from the end of one write to the start of the next (the guard cannot know when an instrument "
            "applies a value within its bus transfer), and no labsat heater driver slews by itself (Qontrol, Keithley "
            "and the SCPI DAC all take set points), so a ramp stays one guarded write per point."
        )
    return lines


def render(
    rows: list[dict[str, Any]],
    overlap: list[dict[str, Any]],
    times: tuple[float, float, float],
    args: argparse.Namespace,
) -> str:
    command = shlex.join(["python", "benchmarks/bench_hil.py", *sys.argv[1:]])
    lines = [
        "## Hardware loop: bench time against the settle-limited bound (`bench_hil.py`)",
        "",
        f"`{command}` — {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; digits 64-16-10 (20 tiles per network "
        f"forward), batch {args.batch_size}, {args.steps} steps per row after a warm-up step, virtual bench clock. "
        "Bound = programs × settle_time_s (10 ms) + samples × the detector's integration time (simulated 1 µs, the "
        "emulated DAQ reports 1 ms); ratio = bound / estimate (1 = nothing but settling and integrating). Per "
        "training step; calibration: the whole default calibration. Heater writes / program = instrument writes "
        "(one per ramp point; the emulated Qontrol sends each as one `vvec` line per 8-channel module).",
        "",
        "| bench | method | tile order | programs | samples | heater writes / program | bound (ms) | "
        "estimate (ms) | ratio | settle % | integration % | ramp + bus % |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        points = f"{r['points']:.2f}" if "points" in r else "-"
        lines.append(
            f"| {r['bench']} | {r['method']} | {r['order']} | {r['programs']:g} | {r['samples']:g} | {points} | "
            f"{r['bound_ms']:.1f} | {r['estimate_ms']:.1f} | {r['ratio']:.3f} | {r['settle_pct']:.1f} | "
            f"{r['integration_pct']:.1f} | {r['ramp_pct']:.1f} |"
        )
    lines += ["", *breakdown(rows, times)]
    lines += [
        "",
        "Could the ramp's step delays count toward the settle? Consecutive tile programs of one PAT step on the "
        "simulated chip, ramped through the guard, read (noiseless) a given wait after the last ramp write, "
        "against the fully settled reading; worst over the step's tile pairs, in % of the full-scale reading:",
        "",
        "| wait after the last write (ms) | worst detector error (%) | read noise σ (%) |",
        "|---:|---:|---:|",
        *(f"| {r['wait_ms']:g} | {r['error_pct']:.4f} | {r['noise_pct']:.4f} |" for r in overlap),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--benches", nargs="+", default=["sim-mrr.yaml", "emu-mrr.yaml"])
    add_write_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder))
        with open_bench(builtin_bench_path(), torch_device=torch.device("cpu")) as sim:
            twin, record, _ = bench_twin(sim, store)
            rows.append(calibration_row(sim, "simulated", record))
            assert isinstance(sim.system, MRRBankSystem)
            tiles = step_tiles(sim, PhysicalLayer.from_system(sim.system, twin.layer), args.batch_size)
            overlap = settle_overlap(sim, tiles, (10e-3, 8e-3, 6e-3, 4e-3))
            times = timing(sim)
        for name in args.benches:
            with open_bench(builtin_bench_path(name), torch_device=torch.device("cpu")) as bench:
                label = "simulated" if name == "sim-mrr.yaml" else "emulated"
                system = bench.system
                assert isinstance(system, MRRBankSystem)
                apply_calibration(system, record)
                rows += training_rows(
                    bench, label, PhysicalLayer.from_system(system, twin.layer), args.steps, args.batch_size
                )
    publish(SECTION, render(rows, overlap, times, args), args)


if __name__ == "__main__":
    main()
