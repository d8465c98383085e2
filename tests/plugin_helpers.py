"""Installing a test plugin as pip would: a ``dist-info`` with its entry points on ``sys.path``."""

from __future__ import annotations

from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parent / "plugins"
"""Where the test plugins' packages live (importable once the fixture puts it on ``sys.path``)."""


def install_plugin(site: Path, monkeypatch: pytest.MonkeyPatch, dist: str, group: str, entry: str) -> None:
    """Make ``dist`` an installed distribution whose ``group`` holds ``entry`` (``name = module:object``)."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.syspath_prepend(str(site))
