"""Simulated MRR layer vs nn.Linear of the same logical shape: forward + backward at batch 256.

The MRR layer is the full differentiable physics of ``labsat.physics.mrr`` with a simulated chip's ground
truth (fabrication scatter, spreads, thermal crosstalk): heater power, crosstalk, Lorentzian weights,
input modulators (fraction ``x`` of each channel's power) and balanced detection with per-row gain and
dark offset, tiled over the bank when the layer is larger (``MRRBankModel.readout``). Gradients flow to
the inputs and to the heater voltages, as in training; ``nn.Linear`` gets gradients for its input,
weight and bias.

Run from the repository root::

    python benchmarks/bench_mrr_layer.py [--repeats N] [--warmup N] [--threads N] [--device cpu|cuda] [--no-write]

Prints a table and writes it to ``benchmarks/RESULTS.md`` as this script's own section (replaced when
re-run; other sections are kept).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from results import add_timing_options, publish, timing_header, timing_setup
from torch import nn
from torch.profiler import profile

from labsat.physics.mrr import MRRBankModel
from labsat.simulators.mrr import MRRSimConfig, chip_params

SECTION = "bench_mrr_layer"
BATCH = 256
TARGET = 2.5


@dataclass(frozen=True)
class Case:
    in_features: int
    out_features: int
    rows: int
    cols: int


CASES = [Case(64, 10, 8, 8), Case(64, 64, 8, 8), Case(256, 256, 8, 8), Case(256, 256, 64, 64)]


def run_case(case: Case, device: torch.device, repeats: int, warmup: int, clock: Callable[[], float]) -> dict[str, Any]:
    """Median step times of both layers, measured interleaved so that load changes hit both alike."""
    torch.manual_seed(0)
    truth = chip_params(MRRSimConfig(), case.rows, case.cols, seed=1, device=device, dtype=torch.float32)
    mrr = MRRBankModel(truth)
    controls = nn.Parameter(2.2 * torch.rand(case.out_features, case.in_features, device=device))
    linear = nn.Linear(case.in_features, case.out_features, device=device)
    x = torch.rand(BATCH, case.in_features, device=device, requires_grad=True)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def mrr_step() -> None:
        controls.grad = x.grad = None
        mrr.readout(x, controls).sum().backward()

    def linear_step() -> None:
        linear.zero_grad(set_to_none=True)
        x.grad = None
        linear(x).sum().backward()

    def timed(step: Callable[[], None]) -> float:
        sync()
        start = clock()
        step()
        sync()
        return clock() - start

    mrr_times, linear_times, ratios = [], [], []
    for i in range(warmup + repeats):
        first, second = (mrr_step, linear_step) if i % 2 == 0 else (linear_step, mrr_step)
        times = {first: timed(first), second: timed(second)}
        if i >= warmup:
            mrr_times.append(times[mrr_step])
            linear_times.append(times[linear_step])
            ratios.append(times[mrr_step] / times[linear_step])
    return {
        "case": case,
        "tiles": -(-case.out_features // case.rows) * -(-case.in_features // case.cols),
        "linear_us": 1e6 * statistics.median(linear_times),
        "mrr_us": 1e6 * statistics.median(mrr_times),
        "ratio": statistics.median(ratios),
        "quartiles": statistics.quantiles(ratios, n=4)[::2],
        "linear_ops": _count_ops(linear_step),
        "mrr_ops": _count_ops(mrr_step),
    }


def _count_ops(step: Callable[[], None]) -> int:
    """Tensor operations one step dispatches (top-level aten calls): the per-call overhead a small layer pays."""
    with profile() as prof:
        step()
    events = [event for event in prof.events() if event.name.startswith("aten::")]
    return sum(1 for event in events if event.cpu_parent is None or not event.cpu_parent.name.startswith("aten::"))


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| layer (in → out) | bank | tiles | nn.Linear µs | MRR layer µs | ratio | ratio p25–p75 | ops (Linear / MRR) "
        f"| ≤ {TARGET:g}× |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        case = r["case"]
        lines.append(
            f"| {case.in_features} → {case.out_features} | {case.rows}×{case.cols} | {r['tiles']} "
            f"| {r['linear_us']:.0f} | {r['mrr_us']:.0f} | {r['ratio']:.2f} "
            f"| {r['quartiles'][0]:.2f}–{r['quartiles'][1]:.2f} | {r['linear_ops']} / {r['mrr_ops']} "
            f"| {'yes' if r['ratio'] <= TARGET else 'no'} |"
        )
    return "\n".join(lines)


def notes(rows: list[dict[str, Any]]) -> str:
    """What the numbers mean, including why a shape misses the target."""
    text = [
        "The ratio is the median of per-step ratios (each MRR step paired with the Linear step next to it). "
        "The MRR layer computes its weights from the heater voltages on every step — V²/R, the thermal "
        "crosstalk, the Lorentzian — and back, then does the same matmul as nn.Linear; the whole physics is "
        "one autograd node with analytic derivatives (`_LorentzWeights`), chip constants are cached, and banks "
        "of up to 16×16 rings run the crosstalk as one matmul with the tile's dense coupling matrix (its "
        "transpose in the backward pass) instead of a conv2d call or padded row windows. Small logical layers "
        "of a fixed chip (up to about two million multiply-adds, `LAYER_COUPLING_MAX_MACS`) skip the ring grid "
        "altogether: the crosstalk of all their tiles is two matmuls on the logical matrix from the kernel's "
        "SVD (`LayerCoupling`), with no padding, tile reshuffles or slicing (64 → 10 went from 44 to 32 "
        "operations and from 2.68× to 2.08×)."
    ]
    over = [r for r in rows if r["ratio"] > TARGET]
    borderline = [r for r in rows if r["ratio"] <= TARGET < r["quartiles"][1]]
    verdict = [
        f"over {TARGET:g}× (median): {_shapes(over)}" if over else f"every median within {TARGET:g}×",
        f"borderline (over {TARGET:g}× in more than a quarter of the steps): {_shapes(borderline)}"
        if borderline
        else "",
    ]
    text.append(
        "Result: " + "; ".join(part for part in verdict if part) + ". What is left: in small layers "
        "every tensor operation costs about the same fixed dispatch time whatever its size, so the time follows "
        "the operation count (ops column: the tiling pad and slice, heater power, crosstalk, Lorentzian and "
        "their derivatives beside nn.Linear's matmuls); in large ones the physics makes about a dozen "
        "elementwise passes over the out×in weight tensor beside the one matmul nn.Linear does. torch.compile "
        "of `readout` was tried on this CPU (torch 2.13, gcc 12): about 190 s to compile and slower per step "
        "(64 → 10: 1093 µs against 641 µs eager), so labsat does not use it. On a loaded shared machine the "
        "per-step ratios spread widely (see the p25–p75 column)."
    )
    return "\n\n".join(text)


def _shapes(rows: list[dict[str, Any]]) -> str:
    cases = [r["case"] for r in rows]
    return ", ".join(f"{c.in_features} → {c.out_features} on {c.rows}×{c.cols}" for c in cases)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_timing_options(parser)
    args = parser.parse_args(argv)
    device, clock = timing_setup(args)
    rows = [run_case(case, device, args.repeats, args.warmup, clock) for case in CASES]
    body = table(rows) + "\n\n" + notes(rows)

    header = timing_header(
        "Simulated MRR layer vs nn.Linear (forward + backward)", "bench_mrr_layer.py", args, device, clock
    )
    header += f"; batch {BATCH}, float32. Target: MRR layer ≤ {TARGET:g}× nn.Linear.\n"
    publish(SECTION, header + "\n" + body, args)


if __name__ == "__main__":
    main()
