"""``labsat serve`` reports a bench that cannot open like every other command: one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BROKEN = """\
name: broken
devices:
  heaters:
    driver: sim
    kind: voltage_source
    channels: {prefix: h, count: 4}
    limits: {voltage: [0, "x"]}
"""


def test_serve_with_a_broken_bench_file_prints_one_line_naming_file_and_key_and_exits_2(
    tmp_path: Path, data_dir: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    done = subprocess.run(
        [sys.executable, "-m", "labsat", "serve", "--bench", str(broken), "--host", "127.0.0.1", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(broken) in lines[0] and "devices.heaters.limits.voltage.1" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
