"""``benchmarks/RESULTS.md``: each benchmark script owns one marked section and rewrites only that."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, body: str) -> None:
    """Replace section ``name`` of RESULTS.md (or append it), leaving every other section untouched."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), flags=re.DOTALL)
    if not pattern.search(text):
        text = text.rstrip("\n") + "\n\n" + begin + end + "\n"
    RESULTS.write_text(pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text))
