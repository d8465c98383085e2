"""One owner per bench across processes: a second process is refused before it touches an instrument.

The heaters sit on an emulated SCPI DAC that this test process serves on 127.0.0.1, so every line any
process sends the instrument is seen here; the CLI runs in a subprocess (and the service in another).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from labsat.bench import open_bench
from labsat.ownership import BenchInUse
from labsat.simulators.emulators.memory import MemoryBackend
from labsat.simulators.emulators.scpi import DacEmulator
from labsat.simulators.emulators.tcp import TcpServer

TIMEOUT_S = 120.0
TOKEN = "operator-token-0123456789abcdef"


@pytest.fixture
def dac_bench(tmp_path: Path, default_bench_data: dict[str, Any]) -> Iterator[tuple[Path, DacEmulator, MemoryBackend]]:
    """The default bench with its heaters on an emulated DAC served here: (bench file, emulator, its outputs)."""
    backend = MemoryBackend(64)
    emulator = DacEmulator(backend, first=1)
    with TcpServer(emulator, name="dac") as server:
        data = deepcopy(default_bench_data)
        heaters = data["devices"]["heaters"]
        heaters.update(driver="scpi_dac", address=server.address, options={"timeout_s": 2.0, "retries": 1})
        heaters["channels"]["first"] = 1
        path = tmp_path / "dac-bench.yaml"
        path.write_text(yaml.safe_dump(data))
        yield path, emulator, backend


def _labsat(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "LABSAT_TOKEN"}
    if token is not None:
        env["LABSAT_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "labsat", *args], capture_output=True, text=True, timeout=TIMEOUT_S, env=env
    )


def test_labsat_set_while_another_process_holds_the_bench_never_reaches_the_instrument(
    dac_bench: tuple[Path, DacEmulator, MemoryBackend], data_dir: Path
) -> None:
    path, emulator, backend = dac_bench
    with open_bench(path, data_dir=data_dir) as held:
        held.note_job("job-0042")
        lines = emulator.lines
        done = _labsat("set", "heaters.h3=1.5", "--bench", str(path))
        assert emulator.lines == lines  # the other process sent the instrument nothing, not even *IDN?
        np.testing.assert_array_equal(backend.volts, 0.0)
        assert done.returncode == 2, done.stderr
        message = done.stderr.strip()
        assert len(message.splitlines()) == 1 and "Traceback" not in done.stderr
        assert f"pid {os.getpid()}" in message and "job job-0042" in message
        assert f"bench file {path.resolve()}" in message and "nothing was written" in message
        held.hold_outputs()
    done = _labsat("set", "heaters.h3=1.5", "--bench", str(path))  # released with the bench: now it may
    assert done.returncode == 0, done.stderr
    assert backend.volts[3] == 1.5  # h3 is SOUR4: names count from 0, the instrument's channels from 1


def test_a_second_open_in_the_same_process_is_refused_too(
    dac_bench: tuple[Path, DacEmulator, MemoryBackend], data_dir: Path
) -> None:
    path, emulator, _ = dac_bench
    with open_bench(path, data_dir=data_dir):
        lines = emulator.lines
        with pytest.raises(BenchInUse, match=rf"held by pid {os.getpid()}"):
            open_bench(path, data_dir=data_dir)
        assert emulator.lines == lines
    with open_bench(path, data_dir=data_dir):  # closed: free again
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_while_the_service_owns_the_bench_the_cli_writes_through_its_api_or_not_at_all(
    dac_bench: tuple[Path, DacEmulator, MemoryBackend], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, backend = dac_bench
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("LABSAT_TOKENS", f"operator:operate:{TOKEN}")
    service = subprocess.Popen(
        [sys.executable, "-m", "labsat", "serve", "--bench", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            assert service.poll() is None, service.communicate()[1]
            try:
                if httpx.get(f"{url}/api/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the service did not start in time"
            time.sleep(0.2)

        refused = _labsat("set", "heaters.h3=1.5", "--bench", str(path))  # no token: refused, holder named
        assert refused.returncode == 2, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        owner = rf"pid (\d+) \(labsat serve \(bench process\), service at {re.escape(url)}\)"
        holder = re.search(owner, refused.stderr)
        assert holder is not None, refused.stderr
        bench_pid = int(holder.group(1))  # the service's own bench process owns the bench
        assert int(Path(f"/proc/{bench_pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == service.pid
        np.testing.assert_array_equal(backend.volts, 0.0)

        with pytest.raises(BenchInUse, match=rf"held by pid {bench_pid}"):
            open_bench(path, data_dir=data_dir)  # nor does a second guard open here

        sent = _labsat("set", "heaters.h3=1.5", "--bench", str(path), "--json", token=TOKEN)
        assert sent.returncode == 0, sent.stderr
        assert '"heaters.h3": 1.5' in sent.stdout
        assert backend.volts[3] == 1.5  # written by the service's guard, the bench's one guard
    finally:
        service.send_signal(signal.SIGINT)
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(timeout=10)
