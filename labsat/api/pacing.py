"""Read pacing: status polling may not starve the bench workers of the interpreter.

Request handling runs on uvicorn's event loop, and the bench workers (training, calibration) run on
threads of the same process: they share one interpreter lock. A training step releases the lock at
every torch operation; when the event loop is never idle it takes the lock each time and keeps it until
Python's switch interval forces it out, so the step gets one operation per interval. A crowd of clients
polling as fast as they can thus starves training (``benchmarks/bench_api.py --max-read-rate 0``: 32
closed-loop clients made an iris run on 2 cores about 45 times slower). So reads (GET, HEAD) are
admitted at a sustained rate with bursts (a generic cell rate algorithm); a read over the rate waits its
turn in ``asyncio.sleep``, which leaves the loop idle and the lock free. Waiting reads are released on
ticks (``TICK_S``), all of one tick together: the loop then takes the lock once per tick and answers them
back to back, instead of taking it from the worker once per read. Writes are never delayed: an emergency
stop, a cancel or a submission goes through at once.
"""

from __future__ import annotations

import asyncio
import math

from starlette.types import ASGIApp, Receive, Scope, Send

READS = frozenset({"GET", "HEAD"})
TICK_S = 0.05

DEFAULT_READ_RATE = 100.0
"""Reads per second admitted at most by default: a read costs the event loop about a millisecond when reads
arrive one at a time, so a saturated rate keeps request handling to about a tenth of the interpreter."""


class ReadPacer:
    """ASGI middleware admitting at most ``rate`` reads per second, ``burst`` at once beyond that rate."""

    def __init__(self, app: ASGIApp, rate: float, burst: int = 50) -> None:
        self.app = app
        self.interval = 1.0 / rate
        self.tolerance = burst * self.interval
        self._theoretical_arrival = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in READS:
            now = asyncio.get_running_loop().time()
            self._theoretical_arrival = max(self._theoretical_arrival, now) + self.interval
            admitted = self._theoretical_arrival - self.tolerance
            if admitted > now:
                await asyncio.sleep(math.ceil(admitted / TICK_S) * TICK_S - now)
        await self.app(scope, receive, send)
