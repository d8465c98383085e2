"""Where labsat keeps its data: ``--data-dir``, else ``$LABSAT_DATA``, else a per-user data directory."""

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
