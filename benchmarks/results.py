"""``benchmarks/RESULTS.md``: each benchmark script owns one marked section and rewrites only that."""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import os
import re
import shlex
import statistics
import sys
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


def mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` of ``values`` times ``scale`` (default: fractions as per cent); std 0 for one value."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{scale * statistics.mean(values):.{digits}f} ± {scale * spread:.{digits}f}"


def add_write_option(parser: argparse.ArgumentParser) -> None:
    """``--no-write``: print the results only, leaving RESULTS.md alone (a trial run)."""
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")


def publish(name: str, body: str, args: argparse.Namespace) -> None:
    """Print section ``name`` and, unless ``--no-write``, write it into RESULTS.md and say so."""
    print(body)
    if not args.no_write:
        write_section(name, body)
        print(f"written to {RESULTS}")


def add_timing_options(parser: argparse.ArgumentParser) -> None:
    """The options of the step-timing benchmarks: repeats, warm-up, device, CPU threads, --no-write."""
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--threads", type=int, default=1, help="intra-op CPU threads (1 keeps timings stable on a shared machine)"
    )
    add_write_option(parser)


def timing_setup(args: argparse.Namespace) -> tuple[torch.device, Callable[[], float]]:
    """The device and the clock to time steps with, after applying ``--threads``.

    On one CPU thread the thread's CPU time is the step's cost without the time other processes hold
    the core, so ratios measured side by side stay stable on a shared machine; otherwise wall time.
    """
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    thread_clock = device.type == "cpu" and args.threads == 1
    return device, time.thread_time if thread_clock else time.perf_counter


def timing_header(
    title: str, script: str, args: argparse.Namespace, device: torch.device, clock: Callable[[], float]
) -> str:
    """A step-timing section's title and its first sentence: the command, when, where, and how it timed.

    The caller appends what its measurement adds (batch, dtype, target) after ``, batch ``.
    """
    command = shlex.join(["python", f"benchmarks/{script}", *sys.argv[1:]])
    threads = torch.get_num_threads()
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {threads} intra-op thread{'' if threads == 1 else 's'}"
    )
    timed = "thread CPU" if clock is time.thread_time else "wall"
    return (
        f"## {title}\n\n"
        f"`{command}` — {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, nproc {len(os.sched_getaffinity(0))}, "
        f"{where}, torch {torch.__version__}, median of {args.repeats} interleaved steps after {args.warmup} "
        f"warm-up, {timed} time, load average {os.getloadavg()[0]:.1f} at the end"
    )


def reuse_freed_memory() -> bool:
    """Let glibc keep freed large buffers for reuse instead of unmapping them; True where it applied.

    Above its mmap threshold glibc maps every allocation fresh and unmaps it on free, so a loop that
    allocates the same multi-MB buffers each step (a D2NN's padded FFT fields) page-faults them in every
    time: about half of a D2NN training step on CPU. A 32 MiB threshold (glibc's maximum) and a high trim
    threshold keep such buffers in the heap. Process-wide, hence here and not in the library.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mmap_threshold, trim_threshold = -3, -1  # glibc's M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    return bool(libc.mallopt(mmap_threshold, 32 << 20)) and bool(libc.mallopt(trim_threshold, 1 << 30))
