"""Diagnostic: is λmax(BP)/λmax(SAT) in the paper's MRR setting limited by Lanczos, by the split, or by the point?

Usage: ``python benchmarks/diag_paper_sharpness.py EPOCHS`` (seed 0, digits; BP and SAT ρ = 1, the ρ seed 0's
validation split chooses in ``bench_paper_mrr.py``). Prints λmax / λmin of the test and the training loss at 100
and 300 Lanczos steps, and how many detunings sit near resonance. Its findings are in benchmarks/RESULTS.md.
"""

import sys
import time

import torch

from labsat.datasets import load_dataset
from labsat.evaluation.hessian import sharpness
from labsat.physics.lorentzian import GAMMA_NM
from labsat.training.paper_mrr import PaperConfig, accuracy, control_loss, flat_controls, train

torch.set_num_threads(1)
epochs = int(sys.argv[1])
ds = load_dataset("digits", seed=0).with_validation(0.15, 0)
for cfg in (PaperConfig("bp", epochs=epochs, seed=0), PaperConfig("sat", epochs=epochs, rho=1.0, seed=0)):
    t = time.perf_counter()
    net = train(ds, cfg)
    v = flat_controls(net)
    print(
        f"{cfg.method} rho={cfg.rho} epochs={epochs}: trained {time.perf_counter() - t:.0f} s, clean "
        f"{100 * accuracy(net, ds.test):.1f} %, -2 K {100 * accuracy(net, ds.test, -2.0):.1f} %, "
        f"|V|<0.5γ {float((v.abs() < 0.5 * GAMMA_NM).float().mean()):.3f}, "
        f"V<γ {float((v < GAMMA_NM).float().mean()):.3f}",
        flush=True,
    )
    for name, split in (("test", ds.test), ("train", ds.train)):
        for iters in (100, 300):
            s = sharpness(control_loss(net, split), v, probes=10, max_iter=iters, tol=1e-5, seed=0)
            print(
                f"  {name} loss, max_iter {iters}: λmax {s.lambda_max:.4g} ± {s.lambda_max_error:.2g}, "
                f"λmin {s.lambda_min:.4g} ± {s.lambda_min_error:.2g}, converged {s.converged}, hvps {s.hvps}",
                flush=True,
            )
