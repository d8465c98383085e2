"""Benchmark: how fast the service answers ``GET /api/jobs/{id}`` under load, and what that load costs training.

A real service (``labsat serve`` in its own process, on 127.0.0.1) runs a training job (iris, PAT) while
``--clients`` concurrent HTTP clients (one keep-alive connection each, asyncio in this process) ask for
that job:

- **closed loop**: every client sends its next request as soon as the last one answered — the most
  load the clients can make;
- **paced**: every client polls at each rate of ``--hz`` (a dashboard per lab PC refreshing the job's progress).

Latency is measured by the clients, end to end. The cost to training is the job's own training-loop
time (``wall_s`` in its result: the epochs, without setup and final evaluation) under load over the same
job without load. Runs are interleaved (no load, closed, paced..., no load, closed, ...) and each loaded
run is compared with the unloaded run of its own round, so a machine whose background load drifts
biases no variant; medians over ``--repeats`` rounds are reported. The CPU time of the service's event
loop thread per request is reported too: unlike wall times it does not depend on what else the machine
runs. A first job warms the service up (imports, caches) and is not counted.

The service runs as shipped: the bench, its job and its training in a bench process of their own
(:mod:`labsat.jobs.bench_process`), request handling in the service's process, reads never paced. Each
round also presses the emergency stop in the middle of a closed-loop run and times it, from the request to
the answer, which carries the outputs after the stop.

The clients run at the lowest priority (nice 19): they stand in for lab PCs. ``--pin`` also puts the bench
process on one CPU and the service with the clients on the others, as if the clients polled from their own
machines; without it they share every core with the job.

Usage: ``python benchmarks/bench_api.py [--clients 32] [--epochs 30] [--repeats 4] [--hz 1 10] [--pin] [--no-write]``
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from results import add_write_option, publish

from labsat.client import LabsatClient
from labsat.jobs.model import FINAL

SECTION = "bench_api"
BENCH = "sim-mrr"
TOKEN = "bench-api-token-0123456789abcdef"
CONTENT_LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)
QUICK_CALIBRATION = {"options": {"sweep_points": 48, "heater_maps": 10, "validation_maps": 4}}


@dataclass
class Run:
    variant: str
    repeat: int
    train_s: float
    latencies_ms: list[float]
    elapsed_s: float
    loop_cpu_s: float


def loop_cpu_s(pid: int) -> float:
    """CPU time of the service's main thread, which runs uvicorn's event loop (all request handling)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (a service's bench processes)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _place(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` on ``cpus`` (affinity is per thread on Linux; later threads inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def pin(service: int) -> str:
    """The bench process on the first CPU, the service and this load generator on the others: the layout of
    a lab whose clients poll from their own PCs, on a machine too small to give them their own."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs two CPUs or more")
    benches = children(service)
    for bench in benches:
        _place(bench, {cpus[0]})
    for pid in (service, os.getpid()):
        _place(pid, set(cpus[1:]))
    return f"the bench process on CPU {cpus[0]}, the service and the clients on CPU {', '.join(map(str, cpus[1:]))}"


def start_service(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``labsat serve`` on a free loopback port, with one operate token; returns the process and its URL."""
    tokens = data / "bench-tokens.yaml"
    tokens.write_text(f"tokens:\n  - {{name: bench, scope: operate, token: {TOKEN}}}\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "labsat", "serve", "--port", str(port), "--tokens", str(tokens)]
    options = ["--data-dir", str(data)]
    with (data / "serve.log").open("ab") as log:
        process = subprocess.Popen([*command, *options], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the service exited: see {data / 'serve.log'}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("the service did not start within 120 s")


async def hammer(url: str, job_id: str, clients: int, hz: float | None) -> list[float]:
    """``clients`` concurrent pollers of the job until it ends; latencies in ms.

    Each client is a keep-alive connection that writes a ready-made request and reads the response by its
    Content-Length (like ``wrk``): the load generator shares the bench PC's cores here, where real clients
    would not, so it must cost as little CPU as possible to keep the measurement about the service.
    """
    host, port = url.removeprefix("http://").split(":")
    request = (f"GET /api/jobs/{job_id} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").encode()
    latencies: list[float] = []

    async def poll(offset: float) -> None:
        period = None if hz is None else 1.0 / hz
        reader, writer = await asyncio.open_connection(host, int(port))
        await asyncio.sleep(0 if period is None else offset * period)  # spread paced clients over a period
        try:
            while True:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                match = CONTENT_LENGTH.search(head)
                if not head.startswith(b"HTTP/1.1 200") or match is None:
                    raise SystemExit(f"unexpected answer: {head[:200]!r}")
                body = await reader.readexactly(int(match.group(1)))
                latencies.append((time.perf_counter() - started) * 1e3)
                if json.loads(body)["state"] in FINAL:
                    return
                if period is not None:
                    await asyncio.sleep(max(0.0, period - (time.perf_counter() - started)))
        finally:
            writer.close()

    await asyncio.gather(*(poll(index / clients) for index in range(clients)))
    return latencies


QUIET = "no load"
CLOSED = "closed loop"


def loads(rates: list[float]) -> dict[str, float | None]:
    """Variant label -> polling rate per client (None: closed loop; 0: no clients)."""
    return {QUIET: 0.0, CLOSED: None, **{f"paced {hz:g} Hz": hz for hz in rates}}


def train(
    lab: LabsatClient,
    service: subprocess.Popen[bytes],
    url: str,
    params: dict,
    label: str,
    repeat: int,
    clients: int,
    hz: float | None,
) -> Run:
    """One training job, with ``clients`` pollers at ``hz`` (None: closed loop, 0: none) until it ends."""
    job = lab.submit("train", params)
    started, cpu = time.perf_counter(), loop_cpu_s(service.pid)
    if hz == 0:
        latencies: list[float] = []
        done = lab.wait(job.id, timeout=3600)
    else:
        latencies = asyncio.run(hammer(url, job.id, clients, hz))
        done = lab.job(job.id)
    if done.result is None:
        raise SystemExit(f"training job {job.id} ended {done.state}: {done.error}")
    elapsed, cpu = time.perf_counter() - started, loop_cpu_s(service.pid) - cpu
    return Run(label, repeat, float(done.result["wall_s"]), latencies, elapsed, cpu)


@dataclass
class Stop:
    """One emergency stop pressed while the job is polled in a closed loop."""

    ms: float
    safe: bool
    cancelled: bool


async def stop_under_load(url: str, job_id: str, clients: int) -> Stop:
    """Press the emergency stop half a second into ``job_id``'s training while ``clients`` poll it flat out."""
    pollers = asyncio.ensure_future(hammer(url, job_id, clients, None))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        while (await client.get(f"/api/jobs/{job_id}")).json()["state"] != "running":
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        started = time.perf_counter()
        answer = await client.post(f"/api/benches/{BENCH}/stop")
        ms = (time.perf_counter() - started) * 1e3
        await pollers
        state = (await client.get(f"/api/jobs/{job_id}")).json()["state"]
    answer.raise_for_status()
    outputs = answer.json()["outputs"]
    return Stop(ms, all(value == 0.0 for values in outputs.values() for value in values), state == "cancelled")


def summary(runs: list[Run], label: str) -> str:
    """One table row: latency over all the variant's runs; slowdown as the median of each repeat's ratio to
    the unloaded run of the same repeat (background load on a shared machine drifts; pairs cancel it)."""
    mine = [run for run in runs if run.variant == label]
    train_s = statistics.median(run.train_s for run in mine)
    if label == QUIET:
        return f"| {label} | – | – | – | – | – | {train_s:.2f} | – |"
    quiet = {run.repeat: run.train_s for run in runs if run.variant == QUIET}
    ratios = [run.train_s / quiet[run.repeat] - 1 for run in mine]
    rounds = ", ".join(f"{100 * ratio:+.0f}" for ratio in ratios)
    latencies = np.concatenate([run.latencies_ms for run in mine])
    rate = len(latencies) / sum(run.elapsed_s for run in mine)
    cpu_ms = 1e3 * sum(run.loop_cpu_s for run in mine) / len(latencies)
    p50, p99 = np.percentile(latencies, [50, 99])
    return (
        f"| {label} | {len(latencies):,} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {cpu_ms:.2f} | {train_s:.2f} "
        f"| {100 * statistics.median(ratios):+.1f} % ({rounds}) |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=30, help="epochs per measured job (longer: less noise)")
    parser.add_argument("--batch-size", type=int, default=16, help="iris: 112 training samples")
    parser.add_argument("--repeats", type=int, default=4, help="runs per variant (medians reported)")
    parser.add_argument("--hz", type=float, nargs="+", default=[1.0, 10.0], help="polling rates of paced clients")
    parser.add_argument("--pin", action="store_true", help="the bench process on one CPU, the rest on the others")
    add_write_option(parser)
    args = parser.parse_args(argv)
    os.nice(19)  # the clients stand in for lab PCs: here they share the bench PC's cores, at the lowest priority
    params = {"dataset": "iris", "method": "pat", "epochs": args.epochs, "batch_size": args.batch_size}
    variants = loads(args.hz)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as folder:
        process, url = start_service(Path(folder))
        placement = pin(process.pid) if args.pin else "no CPU pinning"
        try:
            with LabsatClient(url, TOKEN, timeout=60) as lab:
                calibration = lab.wait(lab.submit("calibrate", QUICK_CALIBRATION).id, timeout=3600)
                assert calibration.result is not None, calibration.error
                train(lab, process, url, {**params, "epochs": 2}, QUIET, -1, args.clients, 0.0)  # warm-up
                runs = []
                stops: list[Stop] = []
                for repeat in range(args.repeats):
                    for label, hz in variants.items():
                        runs.append(train(lab, process, url, params, label, repeat, args.clients, hz))
                        print(f"{label:>14}: training {runs[-1].train_s:.2f} s, {len(runs[-1].latencies_ms)} requests")
                    stops.append(asyncio.run(stop_under_load(url, lab.submit("train", params).id, args.clients)))
                    print(f"emergency stop: {stops[-1].ms:.1f} ms, outputs safe {stops[-1].safe}")
        finally:
            process.terminate()
            process.wait(60)
    command = " ".join(shlex.quote(part) for part in ["python", "benchmarks/bench_api.py", *(argv or sys.argv[1:])])
    steps = -(-112 // args.batch_size) * args.epochs
    body = "\n".join(
        [
            f"## REST service under polling load (`bench_api.py`{', bench process pinned' if args.pin else ''})",
            "",
            f"`{command}` — {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, nproc {os.cpu_count()}, "
            f"load average {os.getloadavg()[0]:.1f} at the end, Python {sys.version.split()[0]}. `labsat serve` in its "
            f"own process on 127.0.0.1 (simulated MRR bench, CPU) trains iris with PAT ({steps} steps) while "
            f"{args.clients} keep-alive clients (asyncio, raw HTTP/1.1) in the benchmark process "
            "`GET /api/jobs/{id}`: closed loop (next request as soon as the last answered) or paced (each client "
            "at the given rate, at nice 19); the bench and its job run in the service's bench process, reads are not "
            f"paced; {placement}. "
            "Latency end to end, seen by the clients; training time = the training loop's "
            f"`wall_s`; slowdown = median over {args.repeats} interleaved rounds of each loaded run's time over the "
            "unloaded run of its round. Service CPU = the event loop thread's CPU time per request. "
            "Targets: p99 < 50 ms with 32 closed-loop clients, training slowed by 5 % at most.",
            "",
            "| load | requests | req/s | p50 ms | p99 ms | service CPU ms/request | training s | training slowed |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *(summary(runs, label) for label in variants),
            "",
            "Rounds' own slowdowns in parentheses (%): the machine's background load moves single runs by tens of "
            "percent.",
            "",
            f"Emergency stop under the closed-loop load, once per round ({len(stops)}): request to answer "
            f"{' / '.join(f'{stop.ms:.1f}' for stop in stops)} ms "
            f"(median {statistics.median(s.ms for s in stops):.1f}, "
            f"max {max(s.ms for s in stops):.1f}; target < 100 ms); every output at its safe value in the answer: "
            f"{'yes' if all(s.safe for s in stops) else 'NO'}; job cancelled: "
            f"{'yes' if all(s.cancelled for s in stops) else 'NO'}.",
        ]
    )
    publish(f"{SECTION}_pinned" if args.pin else SECTION, body, args)


if __name__ == "__main__":
    main()
