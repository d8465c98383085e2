"""Benchmark: what the driver layer costs on the wire, and what a vector write saves.

1. Queries per second through a real driver (validation, dialect checks, the link's lock, logging and
   retry wrapper, the transport) against the same emulator queried raw with the same wire exchange,
   so the driver's overhead is visible next to the round trip:
   - Qontrol over the ``labsatemu://`` pyserial handler: ``driver.get("voltage")`` vs a bare
     pyserial port that, like the driver (and the vendor's ``qontrol.py``), looks for stale lines
     (``in_waiting``) before it writes ``v0?``, then reads the reply line;
   - SCPI DAQ over TCP on 127.0.0.1: ``daq.read()`` (``READ?`` through pyvisa-py) vs a bare
     pyvisa-py resource sending ``READ?`` and reading the reply (the driver's own overhead), and vs
     a bare socket doing the same (what the VISA library itself costs on top of the wire).
2. One vector write against per-channel writes: 64 Qontrol channels on 8 modules (one ``vvec`` line
   per module vs 64 acknowledged ``v{ch}=`` lines) and 8 DAC channels (one compound SCPI message with its error check
   vs 8 messages each followed by ``SYST:ERR?``, the only way for an instrument without compound
   messages).

Backends are in memory: this measures the wire and driver layers, not the physics. Each figure is
the median over ``--repeats`` batches; the batches of the cases one ratio compares are taken in
turn. Results are printed and written to ``benchmarks/RESULTS.md`` as this script's own section
(replaced when re-run; other sections are kept).

Usage: ``python benchmarks/bench_drivers.py [--seconds 0.5] [--repeats 5] [--no-write]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shlex
import socket
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import serial
from results import add_write_option, publish

from labsat.benchfile import ChannelLimits
from labsat.drivers.instrument import Scpi
from labsat.drivers.qontrol import QontrolDriver
from labsat.drivers.scpi_dac import ScpiDac
from labsat.drivers.scpi_daq import ScpiDaq
from labsat.drivers.transport import Link, RetryPolicy, VisaTransport, transport_opener
from labsat.simulators.emulators import protocol_labsatemu
from labsat.simulators.emulators.memory import MemoryBackend as Memory
from labsat.simulators.emulators.qontrol import QontrolEmulator
from labsat.simulators.emulators.scpi import DacEmulator, DaqEmulator
from labsat.simulators.emulators.tcp import TcpServer

SECTION = "bench_drivers"
CASES = [
    "What each case does:",
    "",
    "- *qontrol raw query*: a bare pyserial port on the same `labsatemu://` emulator checks `in_waiting` for",
    "  stale lines (as the driver and the vendor's `qontrol.py` do before every command), writes `v0?` and",
    "  reads the reply line with `read_until` and takes its number with a pattern (as `qontrol.py` does: replies",
    "  carry units, `+0.2077 V`).",
    "- *qontrol driver query*: `QontrolDriver.get('voltage', ch=0)`: the same exchange through the link's",
    "  lock and retry wrapper, with the reply checked (printable, not an `E<code>` reply) and parsed by pattern.",
    "- *qontrol vector / per-channel write (64 ch)*: 64 new set points on 8 Q8iv modules: one acknowledged",
    "  `vvec` line per module, or 64 acknowledged `v{ch}=` lines; both include the bench-range check, power-safe",
    "  ordering and the emulator's own work per line (clamping at vmax/imax, the backend write).",
    "- *daq raw query (TCP socket)*: `READ?` on a bare socket with Nagle off, reply read to its `\\n`.",
    "- *daq raw query (pyvisa-py)*: `resource.query('READ?')` on a pyvisa-py resource opened as the driver opens",
    "  its own (same library, termination and Nagle setting): the driver's transport without the driver.",
    "- *daq driver read*: `ScpiDaq.read()`: the same `READ?` through the link, reply parsed and counted.",
    "- *dac vector / per-channel write (8 ch)*: one compound SCPI message with its `SYST:ERR?`, or 8 messages",
    "  each followed by `SYST:ERR?`.",
]
RAW_VOLTS = re.compile(rb"\s*([-+]?\d+(?:\.\d*)?) V")
"""The raw case's own reading of a ``+0.2077 V`` reply (the driver's pattern is not used for the baseline)."""
POLICY = RetryPolicy(timeout_s=2.0, retries=0)
HEATER_LIMITS = ChannelLimits(voltage=(0.0, 4.0), resistance_ohm=1000.0, current_max_ma=4.5)
DAC_LIMITS = ChannelLimits(voltage=(0.0, 2.2))


def rates(operations: dict[str, Callable[[], object]], seconds: float, repeats: int) -> dict[str, list[float]]:
    """Operations per second of each case in each of ``repeats`` batches of about ``seconds`` each.

    The batches of the cases compared with each other are taken in turn (A, B, C, A, B, C, ...), so a
    change in the machine's load during the run falls on every case alike instead of on whichever
    case happened to run then.
    """
    sizes = {}
    for name, operation in operations.items():
        operation()  # warm-up: connections, caches
        started, count = time.perf_counter(), 0
        while time.perf_counter() - started < seconds / 10:
            operation()
            count += 1
        sizes[name] = max(1, round(count * 10 * seconds / max(time.perf_counter() - started, 1e-9) / 10))
    samples: dict[str, list[float]] = {name: [] for name in operations}
    for _ in range(repeats):
        for name, operation in operations.items():
            started = time.perf_counter()
            for _ in range(sizes[name]):
                operation()
            samples[name].append(sizes[name] / (time.perf_counter() - started))
    return samples


def paired_ratio(a: list[float], b: list[float]) -> str:
    """``a / b`` as the ratio of the two medians, with the quartiles of the batch-by-batch ratios (batches
    taken in turn), which show how much of it the machine's noise could move."""
    median = statistics.median(a) / statistics.median(b)
    if len(a) < 4:
        return f"{median:.2f}×"
    q1, _, q3 = statistics.quantiles([x / y for x, y in zip(a, b, strict=True)], n=4)
    return f"{median:.2f}× (batch-by-batch quartiles {q1:.2f}–{q3:.2f})"


def _link(name: str, address: str) -> Link:
    return Link(name, address, transport_opener(address, {}, POLICY.timeout_s), POLICY)


def qontrol_cases(seconds: float, repeats: int) -> dict[str, list[float]]:
    url = protocol_labsatemu.publish("bench-qontrol", QontrolEmulator(Memory(64), [1000.0] * 64))
    try:
        vector = QontrolDriver("heaters", _link("heaters", url), range(64), [HEATER_LIMITS] * 64).connect()
        single = QontrolDriver("heaters", _link("heaters", url), range(64), [HEATER_LIMITS] * 64, False).connect()
        port = serial.serial_for_url(url, baudrate=115200, timeout=POLICY.timeout_s)

        def raw_query() -> float:
            if port.in_waiting:  # nothing is waiting here: the check, not a read, is what it costs
                port.reset_input_buffer()
            port.write(b"v0?\n")
            return float(RAW_VOLTS.match(port.read_until(b"\n")).group(1))  # type: ignore[union-attr]

        values = iter(np.tile(np.linspace(0.0, 3.0, 7), 10**7))
        positions = np.arange(64)
        queries = rates(
            {"qontrol raw query": raw_query, "qontrol driver query": lambda: vector.get("voltage", ch=0)},
            seconds,
            repeats,
        )
        writes = rates(
            {
                "qontrol vector write (64 ch)": lambda: vector.write_voltages(positions, np.full(64, next(values))),
                "qontrol per-channel write (64 ch)": lambda: single.write_voltages(
                    positions, np.full(64, next(values))
                ),
            },
            seconds,
            repeats,
        )
        return {**queries, **writes}
    finally:
        protocol_labsatemu.withdraw("bench-qontrol")


def scpi_cases(seconds: float, repeats: int) -> dict[str, list[float]]:
    with (
        TcpServer(DaqEmulator(Memory(8)), "bench-daq") as daq_server,
        TcpServer(DacEmulator(Memory(8)), "bench-dac") as dac_server,
    ):
        daq = ScpiDaq("pd", _link("pd", daq_server.address), range(1, 9)).connect()
        raw = socket.create_connection(("127.0.0.1", daq_server.port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        visa = VisaTransport(daq_server.address, timeout_s=POLICY.timeout_s)  # pyvisa-py, Nagle off, as the driver's
        resource = visa._resource

        def visa_query() -> None:
            resource.query("READ?")

        def raw_query() -> None:
            raw.sendall(b"READ?\n")  # the scan the driver configured at connect, as its reads
            reply = b""
            while not reply.endswith(b"\n"):
                reply += raw.recv(4096)

        channels = list(range(1, 9))
        compound = ScpiDac("mods", _link("mods", dac_server.address), channels, [DAC_LIMITS] * 8, dialect=Scpi())
        plain = ScpiDac(
            "mods", _link("mods", dac_server.address), channels, [DAC_LIMITS] * 8, dialect=Scpi(compound=False)
        )
        compound.connect()
        plain.connect()
        values = iter(np.tile(np.linspace(0.0, 2.0, 7), 10**7))
        positions = np.arange(8)
        reads = rates(
            {
                "daq raw query (TCP socket)": raw_query,
                "daq raw query (pyvisa-py)": visa_query,
                "daq driver read (pyvisa-py)": daq.read,
            },
            seconds,
            repeats,
        )
        writes = rates(
            {
                "dac vector write (8 ch, one message)": lambda: compound.write_voltages(
                    positions, np.full(8, next(values))
                ),
                "dac per-channel write (8 ch, 8 messages)": lambda: plain.write_voltages(
                    positions, np.full(8, next(values))
                ),
            },
            seconds,
            repeats,
        )
        results = {**reads, **writes}
        raw.close()
        visa.close()
        for driver in (daq, compound, plain):
            driver.close()
        return results


def table(results: dict[str, float]) -> str:
    lines = ["| case | per second | time per op |", "|---|---:|---:|"]
    for case, per_second in results.items():
        lines.append(f"| {case} | {per_second:,.0f} | {1e3 / per_second:.3f} ms |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one timed batch")
    parser.add_argument("--repeats", type=int, default=5, help="batches per case (the median is reported)")
    add_write_option(parser)
    args = parser.parse_args(argv)
    samples = {**qontrol_cases(args.seconds, args.repeats), **scpi_cases(args.seconds, args.repeats)}
    results = {name: statistics.median(values) for name, values in samples.items()}
    ratios = [
        (
            "driver query / raw query, Qontrol serial",
            paired_ratio(samples["qontrol driver query"], samples["qontrol raw query"]),
        ),
        (
            "driver read / raw query, DAQ TCP, both through pyvisa-py",
            paired_ratio(samples["daq driver read (pyvisa-py)"], samples["daq raw query (pyvisa-py)"]),
        ),
        (
            "driver read through pyvisa-py / raw query on a bare socket, DAQ TCP",
            paired_ratio(samples["daq driver read (pyvisa-py)"], samples["daq raw query (TCP socket)"]),
        ),
        (
            "vector / per-channel writes, Qontrol 64 ch",
            paired_ratio(samples["qontrol vector write (64 ch)"], samples["qontrol per-channel write (64 ch)"]),
        ),
        (
            "vector / per-channel writes, DAC 8 ch",
            paired_ratio(
                samples["dac vector write (8 ch, one message)"], samples["dac per-channel write (8 ch, 8 messages)"]
            ),
        ),
    ]
    command = " ".join(shlex.quote(part) for part in ["python", "benchmarks/bench_drivers.py", *(argv or sys.argv[1:])])
    nproc = len(os.sched_getaffinity(0))
    body = "\n".join(
        [
            "## Drivers and wire-level emulators (`bench_drivers.py`)",
            "",
            f"`{command}` — {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, nproc {nproc}, "
            f"load average {os.getloadavg()[0]:.1f} at the end, Python {sys.version.split()[0]}, in-memory "
            f"emulator backends, medians of {args.repeats} batches "
            "(the batches of compared cases taken in turn).",
            "",
            table(results),
            "",
            *[f"- {label}: {ratio}" for label, ratio in ratios],
            "",
            *CASES,
        ]
    )
    publish(SECTION, body, args)


if __name__ == "__main__":
    main()
