"""``benchmarks/RESULTS.md``: each benchmark script owns one marked section and rewrites only that."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, body: str) -> None:
    """Replace section ``name`` of RESULTS.md (or append it), leaving every other section untouched."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), flags=re.DOTALL)
    if not pattern.search(text):
        text = text.rstrip("\n") + "\n\n" + begin + end + "\n"
    RESULTS.write_text(pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text))


def add_timing_options(parser: argparse.ArgumentParser) -> None:
    """The options of the step-timing benchmarks: repeats, warm-up, device, CPU threads, --no-write."""
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--threads", type=int, default=1, help="intra-op CPU threads (1 keeps timings stable on a shared machine)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")


def timing_setup(args: argparse.Namespace) -> tuple[torch.device, Callable[[], float]]:
    """The device and the clock to time steps with, after applying ``--threads``.

    On one CPU thread the thread's CPU time is the step's cost without the time other processes hold
    the core, so ratios measured side by side stay stable on a shared machine; otherwise wall time.
    """
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    thread_clock = device.type == "cpu" and args.threads == 1
    return device, time.thread_time if thread_clock else time.perf_counter
