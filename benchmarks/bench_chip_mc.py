"""Monte Carlo over fabricated chips: K chips as one tensor vs one chip at a time.

The transfer question (how do these controls do on another chip of the same design?) is a Monte Carlo over
fabrication seeds. ``fresh_chip_population`` stacks K chips' parameters into one batched twin, so the
network runs on every chip in one pass; ``fresh_chips`` draws them one by one. Both give the same logits
(``tests/test_evaluate_network.py``). Timed here: the digits network of the default bench (64-16-10 on the
8 × 8 bank) on the 450-image test split, K = 64 chips, the draw included (it is part of each sweep point).

Run from the repository root::

    python benchmarks/bench_chip_mc.py [--chips 64] [--repeats N] [--warmup N] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from results import add_timing_options, publish, timing_header, timing_setup

from labsat.evaluation.chips import fresh_chip_population, fresh_chips
from labsat.readout import Readout
from labsat.simulators.mrr import MRRSimConfig
from labsat.training.network import PhotonicNet

SECTION = "bench_chip_mc"
SIZES = (64, 16, 10)
SAMPLES = 450
SIGMA_NM = 0.08


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=64)
    add_timing_options(parser)
    parser.set_defaults(repeats=5, warmup=1)
    args = parser.parse_args()
    device, clock = timing_setup(args)
    generator = torch.Generator().manual_seed(0)
    net = PhotonicNet(SIZES).to(device)
    with torch.no_grad():
        for theta in net.photonic_parameters():
            theta.copy_(torch.rand(theta.shape, generator=generator).to(device) * 3.5 + 0.25)
    x = torch.rand(SAMPLES, SIZES[0], generator=generator).to(device)
    readout = Readout(
        volts_per_unit=torch.full((8,), 0.5, device=device),
        dark_volts=torch.zeros(8, device=device),
        modulator_v_pi=torch.full((8,), 2.0, device=device),
    )
    design = (MRRSimConfig(), 8, 8, readout, device)
    seeds = list(range(1000, 1000 + args.chips))
    population, draw = fresh_chip_population(*design), fresh_chips(*design)

    def run(layer) -> torch.Tensor:  # type: ignore[no-untyped-def]
        return net(x, lambda index, h, theta: layer(h, theta, 0.0)).argmax(-1)

    def batched() -> torch.Tensor:
        return run(population(SIGMA_NM, seeds))

    def looped() -> torch.Tensor:
        return torch.stack([run(draw(SIGMA_NM, seed)) for seed in seeds])

    times: dict[str, list[float]] = {"batched": [], "loop": []}
    with torch.no_grad():
        agree = bool(torch.equal(batched(), looped()))
        for step in range(args.warmup + args.repeats):
            for name, fn in (("batched", batched), ("loop", looped)):
                started = clock()
                fn()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if step >= args.warmup:
                    times[name].append(clock() - started)
    batch_s, loop_s = statistics.median(times["batched"]), statistics.median(times["loop"])
    header = timing_header("Monte Carlo over chips: one tensor vs a loop", "bench_chip_mc.py", args, device, clock)
    body = "\n".join(
        [
            f"{header}, network {'-'.join(map(str, SIZES))} on the 8 × 8 bank, {SAMPLES} samples, "
            f"{args.chips} chips at σ_fab = {SIGMA_NM} nm (draw included).",
            "",
            "| chips as | per sweep point (ms) | per chip (ms) |",
            "|---|---:|---:|",
            f"| one tensor (`fresh_chip_population`) | {1e3 * batch_s:.1f} | {1e3 * batch_s / args.chips:.2f} |",
            f"| a loop (`fresh_chips`) | {1e3 * loop_s:.1f} | {1e3 * loop_s / args.chips:.2f} |",
            "",
            f"Loop / tensor = {loop_s / batch_s:.2f}×; predictions identical: {'yes' if agree else 'NO'}.",
        ]
    )
    publish(SECTION, body, args)


if __name__ == "__main__":
    main()
