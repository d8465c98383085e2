"""Resumable cell store: one JSON file per finished or failed cell, written atomically.

A killed sweep leaves only whole files, so on the next run every stored ``ok`` cell is skipped; a failed
cell is recorded with its error and tried again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class CellStore:
    """The cells of one sweep under ``folder/cells``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "cells"
        self.folder.mkdir(parents=True, exist_ok=True)

    def put(self, cell_id: str, record: dict[str, Any]) -> None:
        """Store ``record`` (``status`` ``ok`` with ``values``, or ``failed`` with ``error``) for the cell."""
        path = self.folder / f"{cell_id}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temporary, path)

    def get(self, cell_id: str) -> dict[str, Any] | None:
        """The stored record of the cell, or None."""
        path = self.folder / f"{cell_id}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def done(self, cell_id: str) -> bool:
        """Whether the cell finished and can be skipped."""
        record = self.get(cell_id)
        return record is not None and record.get("status") == "ok"
