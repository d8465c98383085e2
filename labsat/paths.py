"""Where labsat keeps things: its data (``--data-dir``, else ``$LABSAT_DATA``, else a per-user data directory)
and the state every labsat process of the machine shares (``$LABSAT_STATE``, else a per-user state directory)."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir(explicit: Path | None = None) -> Path:
    """The data directory, created if missing."""
    if explicit is not None:
        chosen = explicit
    elif os.environ.get("LABSAT_DATA"):
        chosen = Path(os.environ["LABSAT_DATA"])
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        chosen = base / "labsat"
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


def state_dir() -> Path:
    """The directory of state shared by every labsat process, whatever its data directory (bench locks).

    ``$LABSAT_STATE``, else ``$XDG_STATE_HOME/labsat``, else ``~/.local/state/labsat``; created if missing.
    Users who share a bench PC share instruments: point ``LABSAT_STATE`` of each at one directory.
    """
    if os.environ.get("LABSAT_STATE"):
        chosen = Path(os.environ["LABSAT_STATE"])
    else:
        chosen = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "labsat"
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen
