"""Simulated MZI mesh layer vs a dense complex matmul with the same unitary: forward + backward at batch 256.

The mesh row is labsat's whole differentiable path from heater phase shifts to output intensities
(``MZIMeshModel.phase_layer``: MZI matrices, the mesh unitary, ``|U x|²``) on a chip with fabrication
errors, with gradients to the phase shifts, as phase-space training takes them. The floor is the step
that cannot be avoided once the unitary is known: ``|x·Uᵀ|²`` as a complex matmul with a fixed ``U``
(a leaf that takes a gradient). torchonn's ``MZIBlockLinear`` (phase mode, Clements) is timed beside them
where it imports; it is not a labsat dependency (``bash benchmarks/torchonn/setup.sh`` puts it beside the CPU
torch, then run with ``PYTHONPATH=benchmarks/torchonn:benchmarks/torchonn/lib``). On the CPU its phase mode
rebuilds the unitaries through NumPy and cannot give phase gradients, so its row is timed with the phases
frozen and the gradient taken to the input: less work than the mesh row, never more.

Run from the repository root::

    python benchmarks/bench_mzi_mesh.py [--repeats N] [--warmup N] [--threads N] [--device cpu|cuda] [--no-write]

Prints a table and writes it to ``benchmarks/RESULTS.md`` as this script's own section.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

import torch
from results import add_timing_options, publish, timing_header, timing_setup
from torch import Tensor, nn

from labsat.physics.mzi import MZIMeshModel, mzi_count, unitary_at
from labsat.simulators.mzi import MZISimConfig, chip_params

SECTION = "bench_mzi_mesh"
BATCH = 256
MODES = (10, 32)
FLOOR_TARGET = 4.0
TORCHONN_TARGET = 2.0

Step = Callable[[], None]


def dense_intensities(unitary: Tensor, x: Tensor) -> Tensor:
    """The floor: ``|x·Uᵀ|²`` written as one complex matmul, the way a dense photonic layer is usually coded."""
    field = x.to(unitary.dtype) @ unitary.mT
    return field.real.square() + field.imag.square()


def torchonn_step(modes: int, device: torch.device, x: Tensor) -> tuple[Step | None, str]:
    """A forward + backward step of torchonn's Clements MZI layer of the same size, or None and why not."""
    try:
        from torchonn.layers import MZIBlockLinear  # type: ignore[import-not-found]
    except Exception as error:  # an optional comparison: any import failure only drops the row
        return None, f"torchonn not importable: {type(error).__name__}: {str(error).splitlines()[0]}"
    layer = MZIBlockLinear(
        modes, modes, bias=False, miniblock=modes, mode="phase", decompose_alg="clements", device=device
    )
    layer.reset_parameters()
    layer.requires_grad_(False)  # its CPU path reconstructs U and V through NumPy: no phase gradients there
    onn_input = x.clone().requires_grad_(True)

    def step() -> None:
        onn_input.grad = None
        layer(onn_input).square().sum().backward()

    try:
        step()
    except Exception as error:  # e.g. a CUDA-only kernel: report it instead of failing the whole benchmark
        return None, f"torchonn MZIBlockLinear failed: {type(error).__name__}: {str(error).splitlines()[0]}"
    return step, ""


def run_case(modes: int, device: torch.device, repeats: int, warmup: int, clock: Callable[[], float]) -> dict[str, Any]:
    """Median step times of the mesh, the floor and torchonn (if any), interleaved so that load hits all alike."""
    torch.manual_seed(0)
    chip = chip_params(MZISimConfig(sigma_bs=0.15, sigma_ph=0.15), modes, seed=1).to(device=device, dtype=torch.float32)
    mesh = MZIMeshModel(chip)
    shifts = nn.Parameter(6.28 * torch.rand(2 * mzi_count(modes), device=device))
    x = torch.rand(BATCH, modes, device=device)
    fixed = nn.Parameter(unitary_at(chip, shifts.detach()))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def mesh_step() -> None:
        shifts.grad = None
        mesh.phase_layer(x, shifts).sum().backward()

    def floor_step() -> None:
        fixed.grad = None
        dense_intensities(fixed, x).sum().backward()

    steps: dict[str, Step] = {"mesh": mesh_step, "floor": floor_step}
    onn, why_not = torchonn_step(modes, device, x)
    if onn is not None:
        steps["torchonn"] = onn

    def timed(step: Step) -> float:
        sync()
        start = clock()
        step()
        sync()
        return clock() - start

    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    for i in range(warmup + repeats):
        shift = i % len(order)
        for name in order[shift:] + order[:shift]:
            elapsed = timed(steps[name])
            if i >= warmup:
                times[name].append(elapsed)
    ratio_floor = [m / f for m, f in zip(times["mesh"], times["floor"], strict=True)]
    row: dict[str, Any] = {
        "modes": modes,
        "us": {name: 1e6 * statistics.median(values) for name, values in times.items()},
        "ratio_floor": statistics.median(ratio_floor),
        "quartiles_floor": statistics.quantiles(ratio_floor, n=4)[::2],
        "torchonn_note": why_not,
    }
    if onn is not None:
        row["onn_over_mesh"] = statistics.median(o / m for o, m in zip(times["torchonn"], times["mesh"], strict=True))
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| N | MZIs | floor µs | labsat mesh µs | torchonn µs | mesh / floor | p25–p75 | torchonn / mesh "
        f"| mesh ≤ {FLOOR_TARGET:g}× floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        onn = f"{r['us']['torchonn']:.0f}" if "torchonn" in r["us"] else "—"
        speedup = f"{r['onn_over_mesh']:.2f}" if "onn_over_mesh" in r else "—"
        lines.append(
            f"| {r['modes']} | {mzi_count(r['modes'])} | {r['us']['floor']:.0f} | {r['us']['mesh']:.0f} | {onn} "
            f"| {r['ratio_floor']:.2f} | {r['quartiles_floor'][0]:.2f}–{r['quartiles_floor'][1]:.2f} | {speedup} "
            f"| {'yes' if r['ratio_floor'] <= FLOOR_TARGET else 'no'} |"
        )
    return "\n".join(lines)


def notes(rows: list[dict[str, Any]]) -> str:
    """What the numbers mean, and which comparison could not be made."""
    text = [
        "Ratios are medians of per-step ratios (the steps of one repeat run back to back, in rotating order). "
        "The mesh builds every MZI's 2×2 matrix with one `polar` over eight terms (the coupler products "
        "and phase offsets are cached per chip), multiplies out each group of four columns path by path (one "
        "gather of the path factors, three products, one `index_add` into dense N×N matrices) and multiplies "
        "the groups in a tree of batched complex matmuls; the output stage is the floor's own "
        "(`labsat.physics.mzi`). Plain autograd throughout, so the same path serves `torch.func` transforms "
        "(the Hessian of `labsat.evaluation.hessian`). Before, one sequence of small operations per column "
        "made the mesh 12× (N = 10) and 18.7× (N = 32) the floor (issue 20's measurement). "
        "`--device cuda` writes a section of its own (`bench_mzi_mesh_cuda`)."
    ]
    missing = {r["torchonn_note"] for r in rows if r["torchonn_note"]}
    if missing:
        text.append(
            "torchonn row: not measured in this run — " + "; ".join(sorted(missing)) + ". Target "
            f"(≥ {TORCHONN_TARGET:g}× faster than torchonn at N = 32) not checked here; "
            "`bash benchmarks/torchonn/setup.sh` makes it importable (see the script's header)."
        )
    else:
        text.extend(
            f"torchonn / mesh at N = {r['modes']}: {r['onn_over_mesh']:.2f} (target ≥ {TORCHONN_TARGET:g} at N = 32)."
            for r in rows
        )
        text.append(
            "torchonn 0.0.8 `MZIBlockLinear(N, N, miniblock=N, mode='phase', decompose_alg='clements')`, from its "
            "sdist through `benchmarks/torchonn/setup.sh` (its package cannot build or import beside the CPU "
            "torch as published; stand-ins for torchvision, mmcv and its CUDA extension, which the layer does "
            "not call on the CPU). Its phase mode realises W = U·Σ·V† with two N-mode meshes and a diagonal "
            "(2·N(N−1)/2 MZIs against the labsat mesh's N(N−1)/2) and rebuilds them through NumPy on the CPU, "
            "where it cannot give phase gradients: its row is timed with the phases frozen and the gradient to "
            "the input only, the labsat row with gradients to every phase shift."
        )
    return "\n\n".join(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_timing_options(parser)
    args = parser.parse_args(argv)
    device, clock = timing_setup(args)
    rows = [run_case(modes, device, args.repeats, args.warmup, clock) for modes in MODES]
    header = timing_header(
        "Simulated MZI mesh vs the dense-unitary floor (forward + backward)", "bench_mzi_mesh.py", args, device, clock
    )
    header += (
        f"; batch {BATCH}, float32/complex64, σ_ph = σ_bs = 0.15. Target: mesh ≤ {FLOOR_TARGET:g}× the floor "
        f"at N = 32 and ≥ {TORCHONN_TARGET:g}× faster than torchonn's MZI layer.\n"
    )
    section = SECTION if device.type == "cpu" else f"{SECTION}_{device.type}"  # CUDA rows get a section of their own
    publish(section, header + "\n" + table(rows) + "\n\n" + notes(rows), args)


if __name__ == "__main__":
    main()
