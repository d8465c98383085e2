"""Angular-spectrum propagation throughput at N = 128 (zero-padded to 256), against the FFTs it cannot avoid.

One propagation is ``fft2`` of the field zero-padded to 2N, a product with the cached transfer function,
``ifft2`` and a crop (:func:`labsat.physics.diffractive.propagate`). Its floor is the bare ``fft2`` (padded) +
``ifft2`` pair on the same batch, timed alongside; a backward pass is one more such pair, so forward+backward
is compared with two. The whole D2NN layer (input optics as one matmul, two masks with their nonlinearity,
three propagations, a lens, the detector sums) is compared with three pairs forward and six for training.
FLOP rates count ``5·M·log₂M`` per complex FFT of ``M = (2N)²`` points (the usual radix-2 estimate).

Run from the repository root::

    python benchmarks/bench_angular_spectrum.py [--batch 32] [--cuda-batch 256] [--repeats 20] [--no-write]

CPU with one intra-op thread (thread CPU time, glibc told to reuse freed buffers: see
``results.reuse_freed_memory``), and CUDA when present (wall time around synchronised calls). Prints a table
and rewrites this script's section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from results import add_write_option, publish, reuse_freed_memory

from labsat.physics.diffractive import DiffractiveModel, DiffractiveOptics, propagate, transfer_function

SECTION = "bench_angular_spectrum"
OPTICS = DiffractiveOptics()
PADDED = 2 * OPTICS.grid
FFT_FLOP = 5 * PADDED**2 * math.log2(PADDED**2)
"""Floating-point operations of one complex FFT of the padded field (radix-2 estimate)."""


def cases(device: torch.device, batch: int) -> dict[str, tuple[Callable[[], Any], int]]:
    """Name -> (one timed call, FFT pairs per sample it needs at least)."""
    generator = torch.Generator(device=device).manual_seed(0)
    grid = OPTICS.grid
    transfer = transfer_function(grid, OPTICS.pixel_um, OPTICS.wavelength_nm, OPTICS.lens_to_mask_mm, device)
    field = torch.randn(batch, grid, grid, dtype=torch.complex64, device=device, generator=generator)
    leaf = field.clone().requires_grad_(True)
    model = DiffractiveModel(OPTICS, device=device)
    x = torch.rand(batch, 64, device=device, generator=generator)
    phases = (2 * math.pi * torch.rand(OPTICS.control_shape, device=device, generator=generator)).requires_grad_(True)

    def bare_ffts() -> None:
        torch.fft.ifft2(torch.fft.fft2(field, s=(PADDED, PADDED)))

    def propagation() -> None:
        with torch.no_grad():
            propagate(field, transfer)

    def propagation_training() -> None:
        leaf.grad = None
        torch.view_as_real(propagate(leaf, transfer)).square().sum().backward()

    def layer() -> None:
        with torch.no_grad():
            model.layer(x, phases)

    def layer_training() -> None:
        phases.grad = None
        model.layer(x, phases).sum().backward()

    return {
        "bare fft2 + ifft2 (padded)": (bare_ffts, 1),
        "propagate, forward": (propagation, 1),
        "propagate, forward + backward": (propagation_training, 2),
        "D2NN layer, forward": (layer, 3),
        "D2NN layer, forward + backward": (layer_training, 6),
    }


def measure(device: torch.device, batch: int, repeats: int, warmup: int) -> list[dict[str, Any]]:
    """Median seconds per call of every case, interleaved so load changes hit all alike."""
    thread_clock = device.type == "cpu" and torch.get_num_threads() == 1
    clock = time.thread_time if thread_clock else time.perf_counter
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    timed = cases(device, batch)
    times: dict[str, list[float]] = {name: [] for name in timed}
    for i in range(warmup + repeats):
        for name, (call, _) in timed.items():
            sync()
            start = clock()
            call()
            sync()
            if i >= warmup:
                times[name].append(clock() - start)
    bare = statistics.median(times["bare fft2 + ifft2 (padded)"])
    return [
        {
            "device": device,
            "batch": batch,
            "case": name,
            "ms": 1e3 * statistics.median(times[name]),
            "per_s": batch / statistics.median(times[name]),
            "bound": pairs,
            "ratio": statistics.median(times[name]) / (pairs * bare),
            "gflops": 2 * FFT_FLOP * batch / bare / 1e9,
        }
        for name, (_, pairs) in timed.items()
    ]


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| device | batch | case | ms / batch | samples/s | FFT pairs (floor) | time / floor |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        where = "CPU, 1 thread" if r["device"].type == "cpu" else torch.cuda.get_device_name(r["device"])
        lines.append(
            f"| {where} | {r['batch']} | {r['case']} | {r['ms']:.2f} | {r['per_s']:,.0f} | {r['bound']} "
            f"| {r['ratio']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="samples per call on the CPU")
    parser.add_argument("--cuda-batch", type=int, default=256, help="samples per call on CUDA")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    add_write_option(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    reused = reuse_freed_memory()
    rows = measure(torch.device("cpu"), args.batch, args.repeats, args.warmup)
    if torch.cuda.is_available():
        rows += measure(torch.device("cuda"), args.cuda_batch, args.repeats, args.warmup)
    bare = [r for r in rows if r["case"].startswith("bare")]
    rates = ", ".join(f"{r['device'].type.upper()} {r['gflops']:.1f} GFLOP/s" for r in bare)
    notes = (
        "A *sample* is one field propagated once (propagate rows) or one image through the whole layer (D2NN "
        f"rows). The floor is that many bare FFT pairs of the padded {PADDED}×{PADDED} field; the bare pair runs at "
        f"{rates} (2·5·M·log₂M flops per pair). A propagation adds the product with the transfer function and "
        "the crop; the layer adds the input matmul, masks, nonlinearity and detector sums, and its backward "
        "runs the FFTs again plus the elementwise derivatives."
    )
    command = shlex.join(["python", "benchmarks/bench_angular_spectrum.py", *sys.argv[1:]])
    header = (
        "## Angular-spectrum propagation throughput (N = 128, padded to 256)\n\n"
        f"`{command}` — {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, nproc {len(os.sched_getaffinity(0))}, "
        f"torch {torch.__version__}, complex64, median of {args.repeats} interleaved calls after {args.warmup} "
        f"warm-up; CPU: thread CPU time{', glibc buffer reuse on' if reused else ''}; CUDA: wall time. "
        f"Load average {os.getloadavg()[0]:.1f} at the end.\n"
    )
    body = header + "\n" + table(rows) + "\n\n" + notes
    publish(SECTION, body, args)


if __name__ == "__main__":
    main()
