"""Per-epoch checkpoints, so a stopped or crashed run continues where it was.

A run's checkpoints live in ``<data_dir>/checkpoints/<run>/``, where ``<run>`` is derived from the bench,
the dataset and every training setting: rerunning the same command with ``--resume`` finds it, and a run
with different settings can never pick up another's state. The file is replaced atomically (written
beside, then renamed), so a crash while saving leaves the previous epoch intact. Contents are plain
tensors, numbers and strings, loaded with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

CHECKPOINTS = "checkpoints"
FILE = "checkpoint.pt"


def run_directory(data_dir: Path, bench: str, dataset: str, settings: dict[str, Any]) -> Path:
    """``<data_dir>/checkpoints/<bench>-<dataset>-<method>-s<seed>-<hash of all settings>``."""
    digest = hashlib.sha256(json.dumps([bench, dataset, settings], sort_keys=True, default=str).encode()).hexdigest()
    label = f"{bench}-{Path(dataset).name}-{settings.get('method', 'run')}-s{settings.get('seed', 0)}"
    return data_dir / CHECKPOINTS / f"{re.sub(r'[^A-Za-z0-9._+-]', '_', label)}-{digest[:10]}"


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` as the run's checkpoint, replacing the previous one atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)
    return path


def load_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The run's last checkpoint, or None when it has none."""
    path = directory / FILE
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
